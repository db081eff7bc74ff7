"""Mistakes a user can fix (a path, a config value, a missing dataset), and the one way every script reports them:
one line `error: ...` on stderr, exit status 2."""

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from lightning.pytorch.utilities.exceptions import MisconfigurationException

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A problem in the user's input; the scripts print its message on one line and exit with status 2."""


TRAINER_HINT = "Check the --trainer settings (e.g. --trainer.accelerator=cpu)."


@contextmanager
def exits_on_user_error(trainer_hint: str = TRAINER_HINT) -> Iterator[None]:
    """Run a script's body: a UserError, or Lightning's word on a bad Trainer setting, becomes one line and exit 2."""
    try:
        yield
    except UserError as error:
        fail(str(error))
    except MisconfigurationException as error:  # e.g. a GPU asked for where there is none
        fail(f"{error} {trainer_hint}")


def fail(message: str) -> None:
    print(f"error: {one_line(message)}", file=sys.stderr)
    sys.exit(USER_ERROR_EXIT)


def one_line(message: str) -> str:
    """The message on one line. A UserError raised in a DataLoader worker arrives wrapped in the worker's
    traceback ("Caught UserError in DataLoader worker process 0 ... UserError: <message>"): its own line is kept."""
    wrapped = re.search(r"^\S*UserError: (.+)$", message, re.M)
    if message.startswith("Caught ") and wrapped:
        message = wrapped.group(1)
    return " ".join(message.split())
