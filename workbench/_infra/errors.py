"""One error type for everything a user can get wrong.

The CLI turns a :class:`WorkbenchError` into a single line on stderr and exit code 2,
so the message itself must name the file/field and say what is wrong.
"""


class WorkbenchError(Exception):
    """A user-facing problem: bad file, bad field, unknown name, unreachable storage."""

    def __init__(self, message: str, *, where: str | None = None):
        self.where = where
        super().__init__(f"{where}: {message}" if where else message)
