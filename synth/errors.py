"""Errors that mean "the request or its data is wrong", as opposed to a bug.

The CLI turns these into a one-line message and a non-zero exit; everything else
is a crash with a traceback.
"""


class InputError(ValueError):
    """The caller's data or parameters cannot be used; the message says why."""
