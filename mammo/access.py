"""Who may retrain, promote and roll back (``MAMMO_TRAINERS``) and submit (``MAMMO_SUBMITTERS``)."""

from __future__ import annotations

from dataclasses import dataclass

from .config import Settings
from .errors import MammoError

__all__ = ["Permission", "can_train", "can_submit", "AccessDenied"]


class AccessDenied(MammoError, PermissionError):
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
            return Permission(True, f"You ({user}) are a trainer here: you may retrain and change "
                                    "the served version.")
        who = f"{user} is" if user else "you are not signed in, so you are"
        return Permission(False, f"Retraining is limited to the trainers of this app; {who} not one "
                                 "of them. Sign in with Hugging Face as a trainer. (For the owner: "
                                 "trainers are listed in MAMMO_TRAINERS.)")
    if settings.on_spaces:
        return Permission(False, "Retraining is switched off on this Space: its owner has named no "
                                 "trainers. (For the owner: list them in MAMMO_TRAINERS.)")
    return Permission(True, "Everyone may retrain here: this is a local install with no trainers "
                            "named. (On a Space, MAMMO_TRAINERS names them.)")


def can_submit(user: str | None, settings: Settings) -> Permission:
    """Submitting cases: everyone, unless MAMMO_SUBMITTERS lists the allowed users."""
    if not settings.submitters or user in settings.submitters:
        return Permission(True, "Submissions are open to everyone." if not settings.submitters else
                          f"You ({user}) may submit cases.")
    who = f"{user} is" if user else "you are not signed in, so you are"
    return Permission(False, f"Submitting cases is limited to the submitters of this app; {who} not "
                             "one of them. Sign in with Hugging Face as a submitter. (For the owner: "
                             "submitters are listed in MAMMO_SUBMITTERS.)")
