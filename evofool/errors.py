"""The one exception type for user mistakes: the CLI prints it as one line, no traceback."""


class EvofoolError(Exception):
    """A problem the user can fix (bad file, key, value); its message is one complete line."""
