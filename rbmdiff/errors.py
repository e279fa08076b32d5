"""The one exception type that reaches a user as a one-line message."""

from __future__ import annotations


class RbmdiffError(ValueError):
    """Bad input or an impossible request; the message says what and what to do instead."""
