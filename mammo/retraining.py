"""A retrain's options as a trainer gives them, its errors, the audit actions that mark it, and what
it returns: what the app, the API and ``python -m mammo retrain`` share, apart from the service that
runs it (:meth:`MammoService.retrain`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import MammoError
from .values import echoed, whole_number, yes_or_no
from .views import small_films_warning

__all__ = ["TRAINING_BEGINS", "AUTO_USER", "PUBLISH_FAILED", "RETRAIN_ENDINGS", "RETRAIN_EVENTS",
           "RetrainBusy", "RetrainError", "PublishedNotServed", "RetrainOptions", "published_meanwhile",
           "withdrawn_meanwhile", "recorded_holdout", "retrain_summary"]

TRAINING_BEGINS = "training begins: reading the films"  # a retrain's step once its checks have passed
AUTO_USER = "automatic retrain (MAMMO_AUTO_RETRAIN_EVERY)"
PUBLISH_FAILED = "not published: publishing it failed"  # a kept candidate's reason (_unpublished)
# the audit actions that end a retrain: a version promoted (served, or published and not yet served),
# a candidate rejected by the gate, or a retrain that failed
RETRAIN_ENDINGS = ("promotion", "promotion, not yet served", "rejection", "retrain failed")
RETRAIN_EVENTS = ("retrain started", *RETRAIN_ENDINGS)  # a start with no end: the app stopped during it


class RetrainBusy(MammoError, RuntimeError):
    """Another retrain is running; only one at a time."""


class RetrainError(MammoError, RuntimeError):
    """A retrain that cannot start (no base data, bad options), or whose passing candidate could not
    be published or served; the message says why, and what was kept."""


class PublishedNotServed(RetrainError):
    """A candidate passed the gate and was published, but could not be loaded back to serve."""

    def __init__(self, message: str, version: str):
        super().__init__(message)
        self.version = version


@dataclass(frozen=True)
class RetrainOptions:
    """Retrain settings a trainer picks in the app.

    Args:
        epochs: epochs (the film recipe's early stopping may end sooner).
        image_size: model input side; None keeps the current model's.
        from_current: fine-tune the current version (else start from ImageNet weights).
        seed: random seed.
    """

    epochs: int = 5
    image_size: int | None = None
    from_current: bool = True
    seed: int = 0

    EPOCH_RANGE: ClassVar[tuple[int, int]] = (1, 100)
    IMAGE_SIZE_RANGE: ClassVar[tuple[int, int]] = (32, 1024)

    @classmethod
    def from_form(cls, epochs: Any, image_size: Any, from_current: Any) -> RetrainOptions:
        """The options as the Retrain tab and ``/retrain`` give them: an image size of 0 or null keeps
        the model's; a null ``from_current`` is the default, True (it was taken as False: an API
        caller's retrain then started from ImageNet). What an API caller sends otherwise is refused,
        not guessed at: 2.5 epochs were run as 2, and the text "false" started from the current model."""
        count, side = whole_number(epochs), 0 if image_size is None else whole_number(image_size)
        current = cls.from_current if from_current is None else yes_or_no(from_current)
        if count is None:
            raise RetrainError(f"The number of epochs must be a whole number, got {echoed(epochs)}.")
        if side is None:
            raise RetrainError("The image size must be a whole number of pixels (0: the current model's), "
                               f"got {echoed(image_size)}.")
        if current is None:
            raise RetrainError("Whether to start from the current model must be true or false (yes or no), "
                               f"got {echoed(from_current)}.")
        return cls(epochs=count, image_size=side or None, from_current=current)

    @classmethod
    def image_sizes(cls, patch_size: int | None = None) -> tuple[int, int]:
        """The image sizes a retrain takes besides 0 (the current model's): :data:`IMAGE_SIZE_RANGE`,
        and at least ``patch_size`` (the served recipe's patches are cut from each film)."""
        smallest, largest = cls.IMAGE_SIZE_RANGE
        return max(smallest, patch_size or 0), largest

    def check(self, patch_size: int | None = None) -> None:
        """Refuse options out of range; ``patch_size``: the served recipe's patches, the smallest image
        it can cut them from (said in the same message, not in a second refusal after this one)."""
        fewest, most = self.EPOCH_RANGE
        if not fewest <= self.epochs <= most:
            raise RetrainError(f"The number of epochs must be from {fewest} to {most}.")
        smallest, largest = self.image_sizes(patch_size)
        why = f" (the served recipe cuts {patch_size} px patches from each film)" if patch_size else ""
        if self.image_size is not None and not smallest <= self.image_size <= largest:
            raise RetrainError(f"The image size must be 0 (the current model's) or from {smallest} to "
                               f"{largest} pixels{why}.")


def published_meanwhile(latest: str, compared: str) -> str:
    """The gate's reason when a candidate that passed cannot be published: ``latest`` came first."""
    return (f"Not published: {latest} was published by another process (a retrain from a shell or a Job) "
            f"while this retrain ran, and the candidate was compared with {compared} only; it is kept as "
            f"rejected. Retrain again to compare a candidate with {latest}.")


def withdrawn_meanwhile(case_ids: Sequence[str]) -> str:
    """The gate's reason when cases the candidate learnt from were withdrawn while it trained."""
    named = ", ".join(case_ids)
    return (f"Not published: {len(case_ids)} case{'s' if len(case_ids) > 1 else ''} it trained on ({named}) "
            f"{'were' if len(case_ids) > 1 else 'was'} withdrawn while this retrain ran, and the candidate "
            "learnt from them; it is kept as rejected. Retrain again to leave them out.")


def recorded_holdout(mammo: Mapping[str, Any]) -> dict | None:
    """A version's recorded held-out AUC, its interval, films and data (None when it records none)."""
    metrics = mammo.get("metrics") or {}
    if metrics.get("auc_malignant") is None:
        return None
    return {"auc_malignant": metrics["auc_malignant"], "n": metrics.get("n"),
            "auc_malignant_ci95": metrics.get("auc_malignant_ci95"),
            "auc_ci_resampled": metrics.get("auc_ci_resampled"),
            "sources": (mammo.get("data") or {}).get("sources")}


def retrain_summary(mammo: Mapping[str, Any], version: str | None, rejected_id: str | None) -> dict:
    """What a retrain returns, from its candidate's config (``mammo``: its report, training history and
    split): ``version`` is the one served after it; ``rejected_id`` names the kept candidate, if any."""
    return {**mammo["report"], "version": version, "rejected_id": rejected_id,
            "history": mammo["training"]["history"], "split": mammo["split"]["description"],
            "film_size_warning": small_films_warning(mammo["training"])}
