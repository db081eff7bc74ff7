"""The one exception type for mistakes a user can fix (a path, a config value, a missing dataset)."""


class UserError(Exception):
    """A problem in the user's input; the scripts print its message on one line and exit with status 2."""
