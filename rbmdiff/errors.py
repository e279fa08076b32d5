"""The exception types that reach a user as a one-line message."""

from __future__ import annotations


class RbmdiffError(ValueError):
    """Bad input or an impossible request; the message says what and what to do instead."""


class NotEmbeddable(RbmdiffError):
    """An RBM too large for a device's graph: its K_{n,m} has no embedding there (a property of
    the model's size and the graph, not a fault)."""


class TransientError(RuntimeError):
    """A fault outside the request (a cloud timeout, an offline solver, HTTP 429 or 5xx) that
    lasted through the library's own retries; the same request may succeed later."""


# what a command line prints as one line (a transient fault exits with EX_TEMPFAIL)
ONE_LINE_ERRORS = (RbmdiffError, TransientError)
EX_TEMPFAIL = 75  # sysexits.h: a temporary failure, try again later
