"""Mistakes a user can fix (a path, a config value, a missing dataset), and the one way every script reports them:
one line `error: ...` on stderr, exit status 2."""

import re
import sys
from argparse import ArgumentError
from collections.abc import Iterator
from contextlib import contextmanager

from lightning.pytorch.utilities.exceptions import MisconfigurationException

USER_ERROR_EXIT = 2


class UserError(Exception):
    """A problem in the user's input; the scripts print its message on one line and exit with status 2."""


def refuse_wrong(*checks: tuple[str, bool]) -> None:
    """Raise one UserError naming only the values that fail their check: `(what it must be, whether it is)`."""
    wrong = [requirement for requirement, ok in checks if not ok]
    if wrong:
        raise UserError("; ".join(wrong))


TRAINER_HINT = "Check the --trainer settings (e.g. --trainer.accelerator=cpu)."


@contextmanager
def exits_on_user_error(trainer_hint: str = TRAINER_HINT) -> Iterator[None]:
    """Run a script's body: a UserError, or Lightning's word on a bad Trainer setting, becomes one line and exit 2."""
    try:
        yield
    except UserError as error:
        fail(str(error))
    except ArgumentError as error:  # the parsers are built with exit_on_error=False, so their errors come here
        fail(argument_error_line(str(error)))
    except MisconfigurationException as error:  # e.g. a GPU asked for where there is none
        fail(f"{error} {trainer_hint}")
    except ValueError as error:  # a class chosen by --model is built inside jsonargparse, which wraps its UserError
        cause = user_error_behind(error)
        if cause is None:
            raise
        fail(str(cause))


def user_error_behind(error: BaseException) -> UserError | None:
    """The UserError that `error` was raised from, if any (followed through `raise ... from`)."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


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


RENAMED = {  # options of earlier versions: what replaced them
    "--objective": "pretraining's objective is now its model class: --model=SimCLRPretraining (or ImageClassifier)",
}


def argument_error_line(message: str) -> str:
    """jsonargparse's multi-line report of a bad option as one line: the option, the value, what it takes."""
    match = re.match(r'Parser key "([^"]+)":?\s*(.*)', message, re.S)
    if match is None:
        if message.startswith("Problems parsing config"):
            return f"the config is not valid YAML ({one_line(message.split(':', 1)[1])})"
        renamed = [hint for option, hint in RENAMED.items()
                   if re.search(rf"unrecognized arguments:.*{option}\b", message)]
        return f"{one_line(message)}{''.join(f'; {hint}' for hint in renamed)} (--help lists every option)"
    key, detail = match.groups()
    not_a_config = re.match(r"Unable to load config '([^']+)'", detail)
    if not_a_config:  # a class name where the command takes only the class's settings (finetune's --model)
        where = " (choosing a class is for scripts/pretrain.py's --model)" if key == "model" else ""
        return (f"--{key}={not_a_config.group(1)!r}: this command's {key} class is fixed; give its settings one by one "
                f"(--{key}.<name>=...) or a YAML file of them{where}")
    nested = re.search(r"Problem with given class_path '[^']+':\s+Parser key \"([^\"]+)\":?\s*(.*?)(?=\n\s+- |\Z)",
                       detail, re.S)
    if nested:  # a class's own argument (--trainer.logger.offline=maybe): name it, not the class option
        return argument_error_line(f'Parser key "{key}.{nested.group(1)}": {nested.group(2)}')
    unknown_class = re.search(r"Expected a dot import path string: (\S+)", detail)
    if unknown_class and key == "model":  # pretraining's class, chosen by name
        return (f"--model={unknown_class.group(1)!r} is not a model class: pretraining trains ImageClassifier (the "
                f"labels) or SimCLRPretraining (no labels) (--model.help <class> lists a class's options)")
    if unknown_class:  # e.g. a logger class this Lightning version does not have (NeptuneLogger left 2.6's list)
        return (f"--{key}={unknown_class.group(1)!r} is not a class this installation knows: give one of Lightning's "
                f"by name (e.g. CSVLogger for a logger) or a full import path, mypackage.MyClass (--help lists every "
                f"option)")
    lacking = re.search(r"NestedArg\(key='([^']+)', val='(.*?)'\)", detail)
    if lacking:  # an argument the class in use does not take (--model.temperature while pretraining ImageClassifier)
        return (f"--{key}.{lacking.group(1)}={lacking.group(2)!r}: the {key} class in use takes no {lacking.group(1)} "
                f"(--{key}.help <class> lists a class's options; another class's option needs that class chosen "
                f"first, e.g. --{key}=SimCLRPretraining)")
    if detail.startswith("File does not exist"):
        return f"--{key}: {one_line(detail)}"
    value = re.search(r"(?:Given|Got) value: (.*)$", detail, re.M)
    subtypes = re.search(r"Subtypes: \[(.*)\]\n", detail)
    expected = re.search(r"Expected a (.*?)\.( Got|$)", detail, re.M)
    types = split_types(subtypes.group(1)) if subtypes else [expected.group(1)] if expected else []
    wanted = " or ".join(readable_type(name) for name in types) or one_line(detail)
    given = f"={value.group(1)!r}" if value else ""
    return f"--{key}{given} is not valid: expected {wanted} (--help lists every option)"


def split_types(listing: str) -> list[str]:
    """`A, B[x, y], C` split at the top-level commas only."""
    parts, depth, current = [], 0, ""
    for char in listing:
        depth += 1 if char in "[(" else -1 if char in "])" else 0
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [*parts, current.strip()]


def readable_type(name: str) -> str:
    """`<class 'int'>` → int, NoneType → null, `typing.Literal['a', 'b']` → one of 'a', 'b'."""
    name = re.sub(r"<class '([\w.]+)'>", r"\1", name).replace("typing.", "")
    if name == "NoneType":
        return "null"
    literal = re.fullmatch(r"Literal\[(.*)\]", name)
    return f"one of {literal.group(1)}" if literal else name
