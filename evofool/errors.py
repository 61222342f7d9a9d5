"""The one exception type for user mistakes: the CLI prints it as one line, no traceback."""


class EvofoolError(Exception):
    """A problem the user can fix (bad file, key, value); its message is one complete line."""


def one_line(error: BaseException, limit: int = 300) -> str:
    """One line that says what went wrong, at most ``limit`` characters: the message's first
    line, or for TorchScript's multi-line tracebacks the last one (``RuntimeError: mat1 and
    mat2 shapes ...``)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    text = lines[-1] if lines[0].startswith("The following operation failed") else lines[0]
    return text if len(text) <= limit else text[:limit - 3] + "..."
