"""Train a model folder end to end: data -> patient split -> fit -> threshold -> metrics -> save.

Used by ``python -m mammo train`` and by retraining in the app, so both record the same things.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .baseline import evaluate_baseline
from .calibration import apply_calibration, fit_calibration
from .config import data_names
from .cv import THRESHOLD_RULE, cross_validate
from .data import (
    NO_MODEL,
    Example,
    SplitSpec,
    film_identities,
    folder_examples,
    label_order,
    learnt_by,
    recorded_films,
    split_by_patient,
)
from .distributed import is_main_process
from .errors import BadRequest
from .film import FilmModel
from .fingerprint import FilmIdentity, Fingerprints, KnownFilms
from .metrics import DEFAULT_THRESHOLD, evaluate_predictions, pick_threshold
from .model import save
from .model_card import render_model_card
from .train import EpochLog, TrainConfig, evaluate_examples, film_scores, train_recipe

__all__ = ["base_splits", "CasesApart", "cases_apart_from", "refuse_learnt_holdout", "train_to_folder",
           "read_cv", "write_card"]

log = logging.getLogger(__name__)


def base_splits(
    data: Sequence[Path], val: Path | None, split: SplitSpec
) -> dict[str, list[Example]]:
    """``train``/``val``/``holdout`` of the base folders: an explicit ``val`` folder (no holdout),
    or a stratified split by patient (the holdout is never trained on nor used for selection)."""
    examples = [e for folder in data for e in folder_examples(Path(folder))]
    if val is not None:
        return {"train": examples, "val": folder_examples(Path(val)), "holdout": []}
    return split_by_patient(examples, split)


def refuse_learnt_holdout(model_dir: Path, name: str, holdout: Sequence[Example], source: str,
                          min_side: int, what_to_do: str) -> None:
    """A BadRequest when the held-out films ``holdout`` (of ``source``) hold films the model at
    ``model_dir`` (called ``name``) was trained or validated on, by the pixel hashes and fingerprints
    its ``config.json`` records (:func:`mammo.data.learnt_by`; nothing to check when it records none):
    scored on them, it would be measured on its own training films."""
    seen = learnt_by(model_dir, film_identities(holdout, min_side))
    if seen:
        raise BadRequest(f"{seen} of the {len(holdout)} held-out films of {source} are films {name} was "
                         f"trained or validated on: {source} has changed since {name} was trained, or is not "
                         f"the data it was trained on, or {name} was trained without this patient split; so "
                         f"the split no longer holds out the films {name} never saw. {what_to_do}")


class CasesApart(NamedTuple):
    """What :func:`cases_apart_from` keeps of the submitted cases, and what it left out."""

    kept: list[Example]
    identities: list[FilmIdentity]  # the kept cases', in order
    conflicts: list[str]  # the case ids of those left out as base films under another label than the film's
    withdrawn_copies: int  # cases left out as copies of withdrawn cases' images
    repeats: int  # later copies of a film whose copies all carry one label (the first is kept)
    disputed: list[str]  # the case ids of films whose copies carry different labels (none is kept)


def cases_apart_from(cases: Sequence[Example], films: KnownFilms[str], min_side: int,
                     withheld: Fingerprints | None = None) -> CasesApart:
    """The cases that are none of ``films`` (the base data's films tagged with their labels: the
    holdout and the validation films must stay unseen by training, a training film must not count
    twice), neither by their pixels nor as a copy at another size or encoding, and no copy of the
    ``withheld`` images (withdrawn cases': one submitted again at another size or encoding, before or
    after the withdrawal); each case decoded once. The cases left out as base films under another
    label than their film's are named (the base label stays: someone should look at them).

    Copies of one film among the cases (the case store refuses the same pixels twice, not a copy at
    another size: an API walk stored one film four times under three labels, each then trained on;
    a copy of any other is one too, so a chain of copies is one film, in whatever order they came)
    are learnt once, as the first of them in ``cases`` (give them in submission order), when they all
    carry one label; when their labels differ, none is learnt (which one is right is for a clinician
    to say: their ids are returned)."""
    conflicts: list[str] = []
    withdrawn = 0
    others: list[tuple[Example, FilmIdentity]] = []  # the cases that are none of the films, in order
    prints = Fingerprints(())  # theirs, in the same order
    film_of: list[int] = []  # union-find over them: copies, and copies of copies, are one film
    for case, identity in zip(cases, film_identities(cases, min_side), strict=True):
        film = films.tag_of(*identity)
        if withheld is not None and withheld.find(identity.fingerprint, identity.mirrored) is not None:
            withdrawn += 1
        elif film is not None:
            if film != case.label:
                conflicts.append(case.group)
        else:
            film_of.append(len(others))
            for copy in prints.find_all(identity.fingerprint, identity.mirrored):
                film_of[_film(film_of, copy)] = len(others)
            others.append((case, identity))
            prints.add(identity.fingerprint)
    by_film: dict[int, list[tuple[Example, FilmIdentity]]] = {}
    for i, case in enumerate(others):  # each film's cases, the first first (films in that order too)
        by_film.setdefault(_film(film_of, i), []).append(case)
    groups = list(by_film.values())
    agrees = [len({case.label for case, _ in group}) == 1 for group in groups]
    agreed = [group for group, one_label in zip(groups, agrees, strict=True) if one_label]
    disputed = [case.group for group, one_label in zip(groups, agrees, strict=True) if not one_label
                for case, _ in group]
    return CasesApart([group[0][0] for group in agreed], [group[0][1] for group in agreed], conflicts,
                      withdrawn, sum(len(group) - 1 for group in agreed), disputed)


def _film(film_of: list[int], case: int) -> int:
    """The case standing for ``case``'s film in the union-find ``film_of`` (paths halved on the way)."""
    while film_of[case] != case:
        film_of[case] = film_of[film_of[case]]
        case = film_of[case]
    return case


_SPLIT_AS_THE_STARTING_MODEL = (
    "Split the data as the starting model was split (its config.json's mammo.split: on the command line "
    "--seed, --val-fraction and --holdout-fraction), or start from ImageNet (--init imagenet).")


def write_card(folder: Path) -> None:
    """(Re)write the folder's README.md model card from its config.json."""
    config = json.loads((Path(folder) / "config.json").read_text())
    (Path(folder) / "README.md").write_text(render_model_card(config))


def _split_record(split: SplitSpec, val: Path | None, sources: list[str], holdout: bool,
                  cv_folds: int = 0, by_patient: bool = True) -> dict:
    """What ``metrics`` were computed on, in words (for the card) and numbers (to redo it);
    ``by_patient``: every film has a patient id (else the images are the groups, and it says so)."""
    whom = "patients" if by_patient else "images (not every image has a patient id: each is its own group)"
    by = {"by": "patient_id" if by_patient else "image"}
    if not holdout and cv_folds:
        return {"name": "cross-validation", "metrics_on": "cross-validation",
                "description": f"pooled out-of-fold predictions of {cv_folds}-fold cross-validation "
                f"by {'patient' if by_patient else 'image'} (cross-fitted calibration)", **by}
    if not holdout and val is not None:
        return {"name": "validation", "metrics_on": "validation", "val_folder": str(val),
                "description": f"the separate validation folder {val}, also used for early stopping, "
                "calibration and the threshold (optimistic)"}
    if not holdout and split.val:
        return {**split.to_dict(), **by, "name": "validation", "metrics_on": "validation",
                "description": f"{split.val:.0%} of the {whom} of {data_names(sources)} (stratified by "
                f"label, seed {split.seed}), also used for early stopping, calibration and the threshold "
                "(optimistic)"}
    if not holdout:
        return {**split.to_dict(), **by, "name": "none", "metrics_on": None,
                "description": "no films were held out (no validation, holdout or cross-validation): "
                "the model was not measured"}
    return {
        **split.to_dict(),
        **by,
        "name": "holdout",
        "metrics_on": "holdout",
        "description": f"{split.holdout:.0%} of the {whom} of {data_names(sources)} (stratified by "
        f"label, seed {split.seed}), never used for training, early stopping or the threshold",
    }


def _calibrate_on(model: FilmModel, examples: Sequence[Example], labels: list[str],
                  config: TrainConfig) -> tuple[float, dict | None]:
    """Fit the model's calibration and threshold on ``examples`` (validation); their metrics."""
    if not examples:
        return DEFAULT_THRESHOLD, None
    scores = film_scores(model, examples, labels, config.preprocess, config.min_side)
    targets = np.array([labels.index(e.label) for e in examples])
    if len(set(targets.tolist())) >= 2:
        model.set_calibration(*fit_calibration(scores, targets, len(labels)))
    probs = apply_calibration(scores, model.calibration.weight.tolist(), model.calibration.bias.tolist())
    threshold = pick_threshold(targets, probs, labels)
    return threshold, evaluate_predictions(targets, probs, labels, threshold=threshold,
                                           groups=[e.group for e in examples])


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
    cv_folds: int = 0,
    workers: int = 1,
    keep_models: Path | None = None,
    cv_from: Path | None = None,
    init_folds: Path | None = None,
    data_names: Sequence[str] | None = None,
    withheld: Sequence[str] = (),
) -> dict:
    """Train, calibrate, pick the operating threshold, evaluate, and save a model folder.

    Without ``cv_folds``, the network trains on the train split and is calibrated (and its
    threshold picked) on the validation split. With ``cv_folds`` = K, the recipe is first
    cross-validated over train + validation (K folds by patient); the final network trains on all
    of train + validation for the fixed epochs and ships with the calibration and threshold fitted
    on the pooled out-of-fold predictions; the cross-validation figures go into the card.

    Args:
        data: base imagefolders.
        out: model folder to write.
        config: training settings.
        val: a separate validation folder (then no holdout is split off).
        split: the patient split of the base data when ``val`` is None.
        extra_train: more training examples (submitted cases); those whose pixels are a film of
            ``data`` (held out, validation or training) are left out, and counted, as are those of
            them whose label differs from the film's.
        progress: called after each epoch.
        step: called after each batch with (done, total).
        command: the command line recorded in the card.
        parent: the version this model was fine-tuned from.
        cv_folds: cross-validate first with this many folds (0: calibrate on validation).
        workers: folds trained at once (processes).
        keep_models: a folder to keep the cross-validation folds' models in.
        cv_from: instead of ``cv_folds``, the ``cv.json`` of a cross-validation of this recipe on
            these films (run separately, e.g. at the same time on other cores); it is read once
            the final model is trained, waiting for it while that cross-validation finishes.
        init_folds: with ``cv_folds``, start each fold from the kept fold model of an earlier
            cross-validation of these films (see :func:`mammo.cv.cross_validate`).
        data_names: how the card and the split record name ``data`` (default: their paths; the app
            names a fetched Hub base dataset by repo and commit, not by its cache folder).
        withheld: the fingerprints of withdrawn cases' images: ``extra_train`` cases that are copies
            of them (at another size or encoding) are left out, and counted.

    Returns the ``mammo`` block written to config.json.
    """
    if init_folds is not None and not cv_folds:
        raise ValueError("fold models to start from (--init-folds) are for a cross-validation (--cv K)")
    split = split or SplitSpec()
    parts = base_splits(data, val, split)
    sources = list(data_names) if data_names else [str(Path(d)) for d in data]
    # another model's weights: none of its films held out here, and its films are recorded as learnt
    inherited = recorded_films(config.init) or {"image_sha256": [], "image_fingerprints": []}
    if parts["holdout"] and str(config.init) not in NO_MODEL and Path(str(config.init)).is_dir():
        refuse_learnt_holdout(Path(str(config.init)), f"the starting model ({config.init})", parts["holdout"],
                              ", ".join(sources), config.min_side, _SPLIT_AS_THE_STARTING_MODEL)
    cross_validating = bool(cv_folds or cv_from)
    # the training and validation films' identities (what the model learns from: trained or validated
    # on), each film decoded once: recorded below, and, with the holdout's, what submitted cases are
    # checked against
    learnable = parts["train"] + parts["val"]
    identity_of = dict(zip(learnable, film_identities(learnable, config.min_side), strict=True))
    films = KnownFilms() if not extra_train else KnownFilms([
        *((identity, film.label) for film, identity in identity_of.items()),
        *zip(film_identities(parts["holdout"], config.min_side), (film.label for film in parts["holdout"]),
             strict=True)])
    apart = cases_apart_from(extra_train, films, config.min_side,
                             Fingerprints(withheld) if withheld else None)
    cases, case_identities, conflicts = apart.kept, apart.identities, apart.conflicts
    withdrawn_copies, repeats, disputed = apart.withdrawn_copies, apart.repeats, apart.disputed
    base_films = len(extra_train) - len(cases) - withdrawn_copies - repeats - len(disputed)
    if base_films:
        log.warning("%d submitted cases left out of training: their images are films of the base data, "
                    "or copies of them at another size or encoding (%d with another label than the base "
                    "data's)", base_films, len(conflicts))
    if withdrawn_copies:
        log.warning("%d submitted cases left out of training: their images are copies of withdrawn cases'",
                    withdrawn_copies)
    if repeats:
        log.warning("%d submitted cases left out of training: their images are copies of earlier cases' "
                    "of the same label", repeats)
    if disputed:
        log.warning("%d submitted cases left out of training: their images are copies of one film under "
                    "different labels", len(disputed))
    base_train = [*parts["train"], *(parts["val"] if cross_validating else [])]
    train = [*base_train, *cases]
    labels = label_order(e.label for e in [*train, *parts["val"], *parts["holdout"]])
    cv = None
    if cross_validating:
        if cv_from and (Path(cv_from).is_file() or not Path(cv_from).parent.is_dir()):
            read_cv(cv_from, config, [e.name for e in train])  # refuse another recipe (or a typo) first
        if cv_folds:
            cv = cross_validate(train, labels, config, folds=cv_folds, seed=config.seed, workers=workers,
                                keep_models=keep_models, init_folds=init_folds)
        result = train_recipe(train, [], labels, config, progress=progress, step=step)
        if cv_from:
            cv = read_cv(cv_from, config, [e.name for e in train])
        result.model.set_calibration(cv["calibration"]["weight"], cv["calibration"]["bias"])
        threshold, val_metrics = cv["threshold"], None
    else:
        result = train_recipe(train, parts["val"], labels, config, progress=progress, step=step)
        threshold, val_metrics = _calibrate_on(result.model, parts["val"], labels, config)
    holdout_metrics = baseline = None
    if parts["holdout"]:
        holdout_metrics = evaluate_examples(
            result.model, parts["holdout"], labels, config.preprocess, threshold, config.min_side
        )
        # the baseline learns from every film before the holdout (the CNN's validation films too)
        learn = train if cv else [*train, *parts["val"]]
        baseline = evaluate_baseline(learn, parts["holdout"], labels, config.preprocess, config.min_side)
    elif not cv and parts["val"]:
        baseline = evaluate_baseline(train, parts["val"], labels, config.preprocess, config.min_side)
    # the validation films' identities: checked against the starting weights
    val_identities = [] if cv else [identity_of[film] for film in parts["val"]]
    mammo = {
        "version": None,
        "parent": parent,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preprocess": {**config.preprocess.to_dict(), "min_side": config.min_side},
        "threshold": threshold,
        "threshold_rule": THRESHOLD_RULE if cv else
        "highest calibrated P(malignant) cut-off reaching 90% sensitivity on validation",
        "metrics": holdout_metrics or (cv and _without_oof(cv)) or val_metrics,
        "split": _split_record(split, val, sources, holdout=bool(holdout_metrics),
                               cv_folds=cv["n_folds"] if cv else 0,
                               by_patient=all(e.metadata.get("patient_id") for films in parts.values()
                                              for e in films)),
        "val_metrics": val_metrics,
        # the same films as "metrics" (as "cv" holds its own): what the CNN adds over simple features
        "baseline": baseline or (cv and cv.get("baseline")),
        "cv": cv and _without_oof(cv),
        "data": {
            "sources": sources,
            "n_train": len(train),
            "n_val": 0 if cv else len(parts["val"]),
            "n_holdout": len(parts["holdout"]),
            "n_cases": len(cases),
            # submitted cases whose images are base films (or copies of them at another size or
            # encoding): held-out or validation films are never trained on, a training film not twice
            "n_cases_left_out": base_films,
            # of those, cases whose confirmed label differs from the base data's (the base label stays)
            "n_cases_label_conflicts": len(conflicts),
            "cases_in_label_conflict": conflicts,  # their case ids, for a clinician to look at
            # cases whose images are copies of withdrawn cases' (at another size or encoding)
            "n_cases_withdrawn_copies": withdrawn_copies,
            # later copies of a film submitted more than once under one label (the first was learnt)
            "n_cases_repeated": repeats,
            # the cases of films submitted more than once under different labels (none was learnt)
            "cases_disputed": disputed,
            "counts": dict(Counter(e.label for e in train)),
            # so the app can say when an upload is one of the films this model learnt from: by its
            # pixels, or (a copy at another size or encoding) by its fingerprint; with those its
            # starting weights learnt from (recorded down the chain), which no later holdout may hold
            "image_sha256": sorted({*(identity_of[film].sha256 for film in learnable),
                                    *(case.sha256 for case in case_identities), *inherited["image_sha256"]}),
            "image_fingerprints": sorted({*(identity_of[film].fingerprint for film in learnable),
                                          *(case.fingerprint for case in case_identities),
                                          *inherited["image_fingerprints"]}),
            # validation films the starting weights had learnt from: their calibration is optimistic
            "val_learnt_by_init": learnt_by(config.init, val_identities) if val_identities else 0,
        },
        "training": {
            **config.to_dict(),
            "best_epoch": result.best_epoch,
            "processes": result.shares.to_dict(),
            "history": [log.__dict__ for log in result.history],
        },
        "command": command,
    }
    if is_main_process():
        save(result.model, out, labels, config.image_size, mammo)
        write_card(out)
    return mammo


_RECIPE_KEYS = ("recipe", "arch", "init", "image_size", "crop", "orient", "vertical_flip", "epochs",
                "batch_size", "lr", "weight_decay", "seed", "patch_size", "top_k", "min_coverage",
                "hard_negatives", "grad_accum", "film_epochs", "film_lr", "film_batch_size",
                "film_augmentation", "test_time_mirror")


def read_cv(path: Path, config: TrainConfig, names: Sequence[str], wait_s: float = 3600) -> dict:
    """A cross-validation summary (``cv.json``) of exactly this recipe on exactly these films;
    waits up to ``wait_s`` for the file to appear (a cross-validation still running)."""
    path = Path(path)
    deadline = time.monotonic() + wait_s
    while not path.is_file():
        if not path.parent.is_dir():  # a mistyped path, not a cross-validation still running
            raise FileNotFoundError(f"no cross-validation summary at {path}: there is no folder "
                                    f"{path.parent}")
        if time.monotonic() > deadline:
            raise FileNotFoundError(f"no cross-validation summary at {path}")
        log.info("waiting for %s (a cross-validation still running?)", path)
        time.sleep(30)
    cv = json.loads(path.read_text())
    if not isinstance(cv, dict):  # the list an earlier `cv --oof-out` wrote
        raise ValueError(f"{path} holds out-of-fold predictions only, not a cross-validation summary "
                         "(cv.json, as `cv --keep-models DIR` or `cv --oof-out FILE` write it)")
    recorded, wanted = {**TrainConfig().to_dict(), **(cv.get("recipe") or {})}, config.to_dict()
    different = [k for k in _RECIPE_KEYS if recorded[k] != wanted[k]]
    if different:
        raise ValueError(f"{path} cross-validated another recipe (differs in {', '.join(different)})")
    if sorted(film["name"] for film in cv.get("oof") or []) != sorted(names):
        raise ValueError(f"{path} cross-validated other films than these")
    return _without_oof(cv)


def _without_oof(cv: dict) -> dict:
    """The cross-validation summary without its per-film predictions (kept out of config.json)."""
    return {k: v for k, v in cv.items() if k not in ("oof", "histories")}
