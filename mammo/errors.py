"""``MammoError``: the one base of every error whose message is written for the person using mammo.

The app shows these messages as they are (and logs each as one line); any other exception is a
bug: the visitor is told an unexpected error was logged, and the traceback goes to the log.
Each subclass keeps a standard base as well (``ValueError``, ``RuntimeError``, ...), so code that
catches those still does.
"""

from __future__ import annotations

__all__ = ["MammoError", "BadRequest", "SettingsError", "ModelError"]


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
