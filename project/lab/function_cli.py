"""The scripts whose settings are one function's arguments (study.py, tune.py): jsonargparse reads them from a YAML
(the script's shipped default unless `--config` is given) and --dotted overrides; a mistake is one line, exit 2; a
signal stops the runs with the script's own word on how to continue."""

import sys
from collections.abc import Callable

from jsonargparse import CLI

from project.config.shipped import config_dir, with_shipped_configs
from project.errors import exits_on_user_error
from project.training.callbacks.interruption import RunInterrupted
from project.training.run import lightning_info_to_stdout


def run_function_cli(
    function: Callable, default_config: str, args: list[str] | None, stopped: Callable[[RunInterrupted], str]
) -> None:
    args = with_shipped_configs(list(sys.argv[1:] if args is None else args))
    if not any(a == "--config" or a.startswith("--config=") for a in args):
        args = ["--config", str(config_dir() / default_config), *args]
    lightning_info_to_stdout()
    with exits_on_user_error("Check the --trainer settings in --extra_args."):
        try:
            CLI(function, args=args, as_positional=False, exit_on_error=False)
        except RunInterrupted as stop:
            print(stopped(stop), file=sys.stderr)
            sys.exit(stop.exit_code)
