"""One error type for everything a user can get wrong.

The CLI turns a :class:`WorkbenchError` into a single line on stderr and exit code 2,
so the message itself must name the file/field and say what is wrong.
"""


class WorkbenchError(Exception):
    """A user-facing problem: bad file, bad field, unknown name, unreachable storage."""

    def __init__(self, message: str, *, where: str | None = None):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)


def shown(value) -> str:
    """A user's value for an error line: ``repr`` for ordinary values, ``a 301-digit number`` for an integer too
    long to print on one line (or to convert to a float)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** 18:
        return f"a {len(str(abs(value)))}-digit number"
    return repr(value)


def check_count(flag: str, value, least: int, most: int) -> None:
    """An integer option in ``[least, most]``, or the one-line error naming ``flag`` (the upper limits keep
    values past 64 bits, which would overflow inside numpy or torch, and runs that never end out)."""
    if not isinstance(value, int) or isinstance(value, bool) or not least <= value <= most:
        raise WorkbenchError(f"{flag}: must be an integer from {least} to {most:,}, got {shown(value)}")
