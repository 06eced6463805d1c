"""Errors the user can fix (a config value, a data file, a checkpoint), and how the command
line scripts show them: their message, which names the key, file or row, without a traceback.

``HYDRA_FULL_ERROR=1`` shows the traceback, as it does for Hydra's own errors.
"""

from __future__ import annotations

import functools
import os
import sys


class UserError(Exception):
    """Base of the errors whose message tells the user what to fix; ``kind`` prefixes it."""

    kind = "Error"


def exit_on_user_error(main):
    """Wrap a script's ``main``: a :class:`UserError` (also one that caused another error,
    e.g. Hydra's instantiation error) exits with status 1 and its one message."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as error:
            user_error = user_error_in(error)
            if user_error is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
                raise
            sys.exit(f"{user_error.kind}: {user_error}")

    return wrapper


def user_error_in(error: BaseException | None) -> UserError | None:
    """``error`` or the first of its causes (``raise ... from``) that is a :class:`UserError`;
    an error raised while handling one is a bug, not the user's."""
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, UserError):
            return error
        seen.add(id(error))
        error = error.__cause__
    return None


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the config names (a checkpoint, an input, a label CSV) does not exist."""

    kind = "File not found"
