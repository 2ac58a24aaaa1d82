"""Who may retrain, promote and roll back (``MAMMO_TRAINERS``) and submit (``MAMMO_SUBMITTERS``),
and who an API caller is (their Hugging Face token, resolved with ``whoami``)."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from huggingface_hub import HfApi

from .config import Settings
from .errors import MammoError
from .store._hub import HubError, HubUnavailable, check_reachable

__all__ = ["Permission", "can_train", "can_submit", "AccessDenied", "TokenUsers", "SIGN_IN"]

SIGN_IN = ("Sign in with Hugging Face (API callers: pass your token, "
           "gradio_client.Client(..., oauth_token=HF_TOKEN))")

log = logging.getLogger(__name__)


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
                                 f"of them. {SIGN_IN} as a trainer. (For the owner: "
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
                             f"one of them. {SIGN_IN} as a submitter. (For the owner: "
                             "submitters are listed in MAMMO_SUBMITTERS.)")


class TokenUsers:
    """Hugging Face user names of API callers' tokens (``whoami``), cached for ``ttl_s`` seconds.

    Tokens are kept only as SHA-256 digests and never logged. An invalid token names nobody (the
    caller is treated as not signed in); one the Hub cannot check right now is refused as that
    (:class:`HubUnavailable`), not taken for nobody, whose refusals would say "pass your token".
    """

    def __init__(self, settings: Settings, ttl_s: float = 300.0, size: int = 256) -> None:
        self.settings, self.ttl_s, self.size = settings, ttl_s, size
        self._cache: OrderedDict[str, tuple[str | None, float]] = OrderedDict()
        self._lock = threading.Lock()

    def user(self, token: str | None) -> str | None:
        """The token's user name; None for no token or one the Hub does not accept. Raises
        HubUnavailable when the Hub does not answer (asked again next time)."""
        if not token:
            return None
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            name, expires = self._cache.get(key, (None, 0.0))
            if expires > time.monotonic():
                return name
        name = self._whoami(token)
        with self._lock:
            self._cache[key] = (name, time.monotonic() + self.ttl_s)
            self._cache.move_to_end(key)
            while len(self._cache) > self.size:
                self._cache.popitem(last=False)
        return name

    def _whoami(self, token: str) -> str | None:
        """The token's user name, or None when the Hub does not accept it."""
        api = HfApi(endpoint=self.settings.hf_endpoint, token=token, library_name="mammo")
        try:
            return check_reachable(api).get("name")
        except HubUnavailable as error:
            log.warning("could not check an API caller's token: %s", error)
            raise HubUnavailable("Your Hugging Face token could not be checked: the Hub did not answer "
                                 f"({error}). Try again in a minute, or call without a token where you "
                                 "need not be signed in.") from error
        except HubError:
            log.info("an API caller sent a token the Hub does not accept")
            return None
