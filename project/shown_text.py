"""Names that come from files (class names in a checkpoint, image paths) are data: shown on a terminal with
their control characters escaped, so a name cannot forge or break an output line, and written to CSV so that a
spreadsheet never reads one as a formula (CWE-1236: checkpoints, and so their class names, are exchanged)."""

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets evaluate (OWASP's CSV-injection list)


def shown(text: str) -> str:
    """`text` as one printable line: newlines, tabs and other control characters escaped as in a Python string."""
    return text if text.isprintable() else repr(text)[1:-1]


def spreadsheet_cell(text: str) -> str:
    """`text` with a leading `'` where a spreadsheet would read it as a formula (the usual neutralisation)."""
    return f"'{text}" if text.lstrip(" \n\r\t").startswith(FORMULA_STARTS) or text.startswith(FORMULA_STARTS) else text
