"""``MammoError``: the one base of every error whose message is written for the person using mammo.

The app shows these messages as they are (and logs each as one line); any other exception is a
bug: the visitor is told an unexpected error was logged, and the traceback goes to the log.
Each subclass keeps a standard base as well (``ValueError``, ``RuntimeError``, ...), so code that
catches those still does.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable

__all__ = ["MammoError", "BadRequest", "SettingsError", "ModelError", "INPUT_ERRORS", "said_in_one_line"]


class MammoError(Exception):
    """A refusal or failure with a message meant for the user.

    Args:
        message: what the user is told.
        logged: what the log records instead, where the message names the user's own files (a file
            name can name a patient, and a log outlives the request).
    """

    def __init__(self, message: str = "", *, logged: str | None = None) -> None:
        super().__init__(message)
        self.logged = message if logged is None else logged


class BadRequest(MammoError, ValueError):
    """A request mammo cannot serve as asked (an unknown option, a value out of range)."""


class SettingsError(MammoError, ValueError):
    """An environment setting (``MAMMO_*``) that cannot be used; the message names it."""


class ModelError(MammoError, RuntimeError):
    """A model that cannot be built or loaded; the message says why."""


# what a command's input causes (a missing or clashing path, a bad value): said, not a traceback
INPUT_ERRORS = (MammoError, ValueError, OSError)


def said_in_one_line(main: Callable[..., int]) -> Callable[..., int]:
    """A command's ``main`` whose input errors (:data:`INPUT_ERRORS`) print one ``error:`` line on
    stderr and return exit status 2, instead of a traceback."""

    @functools.wraps(main)
    def run(*args, **kwargs) -> int:
        try:
            return main(*args, **kwargs)
        except INPUT_ERRORS as error:
            print(f"error: {error}", file=sys.stderr)
            return 2

    return run
