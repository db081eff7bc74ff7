"""docs/options.md, generated from the scripts' own `--help`, so the option list cannot drift from the code.

`PYTHONPATH=. python tests/docs_options.py` rewrites it; tests/test_docs.py fails when it is stale (compared with
whitespace collapsed, since where the package is installed changes how argparse wraps a default path).
"""

import contextlib
import io
import os
import re
import sys
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parent.parent
OPTIONS = REPOSITORY / "docs" / "options.md"
# The scripts whose options a user sets most, in the order of the guides; pretrain.py chooses its model class
# (--model=SimCLRPretraining), so each class's options are listed by its own `--model.help`.
SCRIPTS = (
    ("pretrain", ()), ("pretrain", ("--model.help", "ImageClassifier")),
    ("pretrain", ("--model.help", "SimCLRPretraining")), ("finetune", ()), ("study", ()), ("transferability", ()),
    ("tune", ()), ("evaluate", ()), ("predict", ()), ("export", ()), ("report", ()),
)
HEADER = """# Every option of every script

Generated from the scripts' own `--help` by `PYTHONPATH=. python tests/docs_options.py`; tests/test_docs.py
fails when this file is stale, so do not edit it by hand. What the config files are for:
[configuration.md](configuration.md).
"""


def script_help(name: str, arguments: tuple[str, ...] = ()) -> str:
    """`python scripts/<name>.py ARGUMENTS --help`, as printed at a fixed width (argparse wraps to $COLUMNS)."""
    import project.commands
    from project.config.shipped import config_dir

    out = io.StringIO()
    saved = sys.argv, os.environ.get("COLUMNS")
    asks_help = any(argument.endswith(".help") for argument in arguments)  # a class's own help, instead of --help
    sys.argv, os.environ["COLUMNS"] = [f"{name}.py", *arguments, *([] if asks_help else ["--help"])], "120"
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            getattr(project.commands, name)()
    finally:
        sys.argv = saved[0]
        if saved[1] is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = saved[1]
    # Where the package is installed is not an option: the shipped configs' folder reads as `configs`.
    return out.getvalue().replace(str(config_dir()), "configs").replace(str(REPOSITORY), ".").rstrip()


def options_markdown() -> str:
    titles = [" ".join((f"scripts/{name}.py", *arguments)) for name, arguments in SCRIPTS]
    lines = [HEADER]
    lines += [f"- [`{title}`](#{re.sub(r'[^a-z0-9 _-]', '', title.lower()).replace(' ', '-')})" for title in titles]
    for title, (name, arguments) in zip(titles, SCRIPTS, strict=True):
        lines.append(f"\n## {title}\n\n```text\n{script_help(name, arguments)}\n```")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    # `--check` prints the list instead: jsonargparse's help names the subclasses imported so far, so the list is
    # only comparable when made, as here, in a process that has imported nothing else.
    if sys.argv[1:] == ["--check"]:
        print(options_markdown(), end="")
    else:
        OPTIONS.write_text(options_markdown())
        print(f"wrote {OPTIONS}")
