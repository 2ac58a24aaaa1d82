"""``MammoError``: the one base of every error whose message is written for the person using mammo.

The app shows these messages as they are (and logs each as one line); any other exception is a
bug: the visitor is told an unexpected error was logged, and the traceback goes to the log.
Each subclass keeps a standard base as well (``ValueError``, ``RuntimeError``, ...), so code that
catches those still does.
"""

from __future__ import annotations

__all__ = ["MammoError", "BadRequest", "SettingsError", "ModelError"]


class MammoError(Exception):
    """A refusal or failure with a message meant for the user."""


class BadRequest(MammoError, ValueError):
    """A request mammo cannot serve as asked (an unknown option, a value out of range)."""


class SettingsError(MammoError, ValueError):
    """An environment setting (``MAMMO_*``) that cannot be used; the message names it."""


class ModelError(MammoError, RuntimeError):
    """A model that cannot be built or loaded; the message says why."""
