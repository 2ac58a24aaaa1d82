"""Who may retrain, promote and roll back (``MAMMO_TRAINERS``) and submit (``MAMMO_SUBMITTERS``)."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings

__all__ = ["Permission", "can_train", "can_submit", "AccessDenied"]


class AccessDenied(PermissionError):
    """The user may not do this; the message says why and how to get access."""


@dataclass(frozen=True)
class Permission:
    allowed: bool
    reason: str

    def require(self) -> None:
        if not self.allowed:
            raise AccessDenied(self.reason)


def can_train(user: str | None, settings: Settings) -> Permission:
    """Retrain, promote and roll back: users in MAMMO_TRAINERS; everyone when unset off Spaces."""
    if settings.trainers:
        if user in settings.trainers:
            return Permission(True, f"{user} is a trainer (MAMMO_TRAINERS)")
        who = f"user {user!r}" if user else "an anonymous visitor"
        return Permission(False, f"Retraining is limited to MAMMO_TRAINERS; {who} is not listed. "
                                 "Sign in with Hugging Face as a listed user.")
    if settings.on_spaces:
        return Permission(False, "Retraining is disabled on this Space: its owner has not set "
                                 "MAMMO_TRAINERS.")
    return Permission(True, "MAMMO_TRAINERS is not set and this is not a Space: everyone may "
                            "retrain here (a local install).")


def can_submit(user: str | None, settings: Settings) -> Permission:
    """Submitting cases: everyone, unless MAMMO_SUBMITTERS lists the allowed users."""
    if not settings.submitters or user in settings.submitters:
        return Permission(True, "submissions are open" if not settings.submitters else
                          f"{user} may submit (MAMMO_SUBMITTERS)")
    who = f"user {user!r}" if user else "an anonymous visitor"
    return Permission(False, f"Submitting cases is limited to MAMMO_SUBMITTERS; {who} is not "
                             "listed. Sign in with Hugging Face as a listed user.")
