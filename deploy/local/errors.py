"""The one error of the local stack: a problem the user can fix, said in one line."""

from __future__ import annotations


class StackError(Exception):
    """A problem the user can fix; its message says what is wrong and what to do.

    ``python -m deploy.local.stack`` prints it as one line and exits with status 2, so every
    module of the local stack raises this rather than printing or exiting itself.
    """
