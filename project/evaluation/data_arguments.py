"""The --data.* options of the scripts that read data for a trained model, defaulting to the data it knew."""

import inspect

from jsonargparse import ArgumentParser, Namespace

from project.data import ImageDataModule


def parse_with_data_defaults(parser: ArgumentParser, args: list[str], settings: dict) -> Namespace:
    """`args` parsed again with `settings` (ImageDataModule arguments) as the --data.* defaults, so that --data.*
    changes only what it names (the first parse found where the settings come from)."""
    known = inspect.signature(ImageDataModule).parameters
    parser.set_defaults({f"data.{key}": value for key, value in settings.items() if key in known})
    return parser.parse_args(args)
