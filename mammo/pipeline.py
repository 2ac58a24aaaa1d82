"""Train a model folder end to end: data -> patient split -> fit -> threshold -> metrics -> save.

Used by ``python -m mammo train`` and by retraining in the app, so both record the same things.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path

from .data import Example, SplitSpec, folder_examples, label_order, split_by_patient
from .metrics import evaluate_predictions, pick_threshold
from .model import save
from .model_card import render_model_card
from .train import EpochLog, TrainConfig, evaluate_examples, fit

__all__ = ["base_splits", "train_to_folder", "write_card"]


def base_splits(
    data: Sequence[Path], val: Path | None, split: SplitSpec
) -> dict[str, list[Example]]:
    """``train``/``val``/``holdout`` of the base folders: an explicit ``val`` folder (no holdout),
    or a stratified split by patient (the holdout is never trained on nor used for selection)."""
    examples = [e for folder in data for e in folder_examples(Path(folder))]
    if val is not None:
        return {"train": examples, "val": folder_examples(Path(val)), "holdout": []}
    return split_by_patient(examples, split)


def write_card(folder: Path) -> None:
    """(Re)write the folder's README.md model card from its config.json."""
    config = json.loads((Path(folder) / "config.json").read_text())
    (Path(folder) / "README.md").write_text(render_model_card(config))


def _split_record(split: SplitSpec, val: Path | None, sources: list[str], holdout: bool) -> dict:
    """What ``metrics`` were computed on, in words (for the card) and numbers (to redo it)."""
    if not holdout:
        return {"name": "validation", "metrics_on": "validation", "val_folder": str(val),
                "description": f"the separate validation folder {val}, also used for early stopping "
                "and the threshold (optimistic)"}
    return {
        **split.to_dict(),
        "name": "holdout",
        "metrics_on": "holdout",
        "description": f"{split.holdout:.0%} of the patients of {', '.join(sources)} (stratified by "
        f"label, seed {split.seed}), never used for training, early stopping or the threshold",
    }


def train_to_folder(
    data: Sequence[Path],
    out: Path,
    config: TrainConfig,
    val: Path | None = None,
    split: SplitSpec | None = None,
    extra_train: Sequence[Example] = (),
    progress: Callable[[EpochLog], None] | None = None,
    step: Callable[[int, int], None] | None = None,
    command: str | None = None,
    parent: str | None = None,
) -> dict:
    """Train, pick the operating threshold on validation, evaluate, and save a model folder.

    Args:
        data: base imagefolders.
        out: model folder to write.
        config: training settings.
        val: a separate validation folder (then no holdout is split off).
        split: the patient split of the base data when ``val`` is None.
        extra_train: more training examples (submitted cases); never in val or holdout.
        progress: called after each epoch.
        step: called after each batch with (done, total).
        command: the command line recorded in the card.
        parent: the version this model was fine-tuned from.

    Returns the ``mammo`` block written to config.json.
    """
    split = split or SplitSpec()
    parts = base_splits(data, val, split)
    train = [*parts["train"], *extra_train]
    labels = label_order(e.label for e in [*train, *parts["val"], *parts["holdout"]])
    result = fit(train, parts["val"], labels, config, progress=progress, step=step)
    val_targets = [labels.index(e.label) for e in parts["val"]]
    threshold = pick_threshold(val_targets, result.val_probs, labels)
    val_metrics = evaluate_predictions(val_targets, result.val_probs, labels, threshold=threshold)
    sources = [str(Path(d)) for d in data]
    holdout_metrics = None
    if parts["holdout"]:
        holdout_metrics = evaluate_examples(
            result.model, parts["holdout"], labels, config.preprocess, threshold, config.min_side
        )
    mammo = {
        "version": None,
        "parent": parent,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preprocess": {**config.preprocess.to_dict(), "min_side": config.min_side},
        "threshold": threshold,
        "threshold_rule": "highest P(malignant) cut-off reaching 90% sensitivity on validation",
        "metrics": holdout_metrics or val_metrics,
        "split": _split_record(split, val, sources, holdout=bool(holdout_metrics)),
        "val_metrics": val_metrics,
        "data": {
            "sources": sources,
            "n_train": len(train),
            "n_val": len(parts["val"]),
            "n_holdout": len(parts["holdout"]),
            "n_cases": len(extra_train),
            "counts": dict(Counter(e.label for e in train)),
        },
        "training": {
            **config.to_dict(),
            "best_epoch": result.best_epoch,
            "history": [log.__dict__ for log in result.history],
        },
        "command": command,
    }
    save(result.model, out, labels, config.image_size, mammo)
    write_card(out)
    return mammo
