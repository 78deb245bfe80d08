"""Errors that cryoplan raises.

`InputError` is the one a user meets: bad input named by its field path and what was expected. The CLI
prints it on one line to stderr and exits 2; every other `CryoplanError` is an internal failure (exit 1).
"""


class CryoplanError(Exception):
    """Base class of cryoplan's own errors."""


class InputError(CryoplanError, ValueError):
    """Bad user input: names the field (a dotted path such as ``labs.bilirubin.unit``) and what was expected.

    Parameters
    ----------
    field : str
        Path of the offending field, file or option.
    expected : str
        What a valid value looks like.
    got : object, optional
        The value received, shown abbreviated.
    """

    def __init__(self, field: str, expected: str, got: object = None):
        self.field = field
        self.expected = expected
        self.got = got
        message = f"{field}: expected {expected}"
        if got is not None:
            shown = repr(got)
            message += f", got {shown[:80] + '…' if len(shown) > 80 else shown}"
        super().__init__(message)
