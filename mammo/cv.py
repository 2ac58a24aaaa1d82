"""Patient-grouped cross-validation: out-of-fold film scores, cross-fitted calibration, pooled metrics.

Every film is scored once, by the model of the fold that held its patient out. Calibration and the
operating threshold are *cross-fitted*: a fold's films are calibrated (and thresholded) by a map
fitted on the other folds' out-of-fold scores, so the pooled figures are of films that neither
trained the network nor fitted its calibration. The calibration and threshold a final model
ships with are fitted on all out-of-fold scores.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from scipy import stats
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedGroupKFold

from .baseline import cross_validate_baseline
from .calibration import apply_calibration, expected_calibration_error, fit_calibration
from .data import Example, copy_groups, film_identities, learnt_by
from .distributed import is_main_process, processes
from .film import uncalibrated
from .imaging import MIN_SIDE
from .metrics import (
    NESTED_CROSS_FITTING,
    auc_abnormal,
    cross_fitted_rates,
    evaluate_predictions,
    malignant_index,
    pick_threshold,
    rates_at,
)
from .model import save
from .subgroups import subgroup_metrics
from .train import TrainConfig, film_scores, train_recipe

log = logging.getLogger(__name__)

__all__ = ["THRESHOLD_RULE", "patient_folds", "FoldResult", "cross_validate", "summarise"]

THRESHOLD_RULE = ("highest calibrated P(malignant) cut-off reaching 90% sensitivity on pooled "
                  "out-of-fold predictions")
_FOLD_KEYS = ("n", "accuracy", "balanced_accuracy", "auc_macro", "auc_malignant", "auc_malignant_ci95",
              "sensitivity", "specificity", "ece_malignant")


def patient_folds(examples: Sequence[Example], folds: int, seed: int, min_side: int = MIN_SIDE,
                  groups: Sequence[str] | None = None) -> np.ndarray:
    """The fold (0..folds-1) of each example: stratified by label, no patient in two folds, nor two
    copies of one image (``groups``: each example's :func:`copy_groups`, computed here when not given;
    images below ``min_side`` are refused)."""
    if folds < 2:
        raise ValueError(f"cross-validation needs at least 2 folds, got {folds}")
    labels = [e.label for e in examples]
    groups = copy_groups(examples, min_side) if groups is None else groups
    patients = Counter(label for label, _ in set(zip(labels, groups, strict=True)))
    fewest = min(patients, key=patients.__getitem__, default=None)
    if fewest is not None and patients[fewest] < folds:  # folds with none of a label (sklearn only warned)
        advice = (f"Use at most {patients[fewest]} folds, or add films" if patients[fewest] >= 2 else
                  "Cross-validation needs at least 2 patients of each label: add films")
        raise ValueError(f"{folds} folds need at least {folds} patients of each label, so that every fold "
                         f"is tested on each; {fewest!r} has {patients[fewest]}. {advice}.")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    fold_of = np.full(len(examples), -1)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(examples)), labels, groups)):
        fold_of[test] = fold
    return fold_of


@dataclass
class FoldResult:
    """One fold: its out-of-fold film scores and its training history."""

    fold: int
    scores: np.ndarray
    history: list[dict]


def _end_with_parent(parent: int) -> None:
    """Fold worker initializer: end this worker within a second of the process that started it
    ending (killed, say, by a job scheduler's SIGTERM, which runs no clean-up), instead of training on
    as an orphan nobody will read."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, name="end-with-parent", daemon=True).start()


def _run_fold(fold: int, train: list[Example], test: list[Example], labels: list[str],
              config: TrainConfig, keep: Path | None) -> FoldResult:
    """Train on ``train``, score ``test`` (runs in a worker process: one torch thread)."""
    torch.set_num_threads(1)
    result = train_recipe(train, [], labels, config)
    scores = film_scores(result.model, test, labels, config.preprocess, config.min_side)
    if keep is not None and is_main_process():
        save(result.model, keep / f"fold{fold}", labels, config.image_size,
             {"version": f"cv-fold{fold}", "preprocess": {**config.preprocess.to_dict(),
                                                          "min_side": config.min_side},
              "training": config.to_dict(), "cv_fold": fold})
    return FoldResult(fold, scores, [log.__dict__ for log in result.history])


def cross_validate(
    examples: Sequence[Example],
    labels: Sequence[str],
    config: TrainConfig,
    folds: int = 5,
    seed: int = 0,
    workers: int = 1,
    keep_models: Path | None = None,
    init_folds: Path | None = None,
) -> dict:
    """Cross-validate ``config``'s recipe over ``examples`` (patient-grouped) and summarise.

    Args:
        examples: all labelled films (grouped by ``Example.group``, the patient).
        labels: class names in model order.
        config: the recipe; every fold trains it for its fixed ``epochs`` (no early stopping).
        folds: number of folds.
        seed: seed of the fold assignment.
        workers: folds trained at once, one process and one torch thread each.
        keep_models: a folder to save each fold's model in (``fold0``, ...) and the summary with
            every film's out-of-fold prediction (``cv.json``), e.g. for heat-map checks.
        init_folds: a folder of fold models kept by a cross-validation of the same films and folds
            (``keep_models``): fold k starts from ``foldk`` instead of ``config.init`` (e.g. the
            whole-film fine-tuning stage after a cross-validated patch stage).
    """
    if workers > 1 and processes() > 1:
        raise ValueError("folds in worker processes (--workers) and a distributed launch do not mix: "
                         "under `accelerate launch` every fold trains on all the launched processes")
    labels = list(labels)
    groups = copy_groups(examples, config.min_side)  # patients, copies of one image joined
    fold_of = patient_folds(examples, folds, seed, groups=groups)
    if keep_models is not None:
        keep_models.mkdir(parents=True, exist_ok=True)
    if init_folds is not None:
        if keep_models is not None and Path(keep_models).resolve() == Path(init_folds).resolve():
            raise ValueError("keep the new fold models in another folder than the ones they start from")
        _check_same_folds(Path(init_folds), examples, fold_of)
    else:
        _check_init_unseen(config, examples)
    jobs = [(k, [e for e, f in zip(examples, fold_of, strict=True) if f != k],
             [e for e, f in zip(examples, fold_of, strict=True) if f == k], labels,
             config if init_folds is None else replace(config, init=str(Path(init_folds) / f"fold{k}")),
             keep_models)
            for k in range(folds)]
    results: list[FoldResult] = []

    def done(result: FoldResult) -> None:
        results.append(result)
        test = fold_of == result.fold
        log.info("cross-validation fold %d done (folds 0 to %d, as in the JSON and the kept models' "
                 "folders): %d films, uncalibrated scores of the malignant class: AUC %s", result.fold,
                 folds - 1, int(test.sum()),
                 _fold_auc(result.scores, [examples[i].label for i in np.flatnonzero(test)]))

    if workers <= 1:
        for job in jobs:
            done(_run_fold(*job))
    else:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_end_with_parent,
                                 initargs=(os.getpid(),)) as pool:
            for future in [pool.submit(_run_fold, *job) for job in jobs]:
                done(future.result())
    scores = np.zeros((len(examples), results[0].scores.shape[1]))
    for result in results:
        scores[fold_of == result.fold] = result.scores
    targets = np.array([labels.index(e.label) for e in examples])
    summary = summarise(scores, targets, fold_of, labels, config.head.kind, groups)  # CIs resample groups
    # each film called at the threshold fitted on the other folds, as the pooled '_cross_fitted' rates
    thresholds = summary.pop("_thresholds")
    summary["subgroups"] = subgroup_metrics(examples, targets, summary["_probs"], labels, thresholds)
    summary["recipe"] = config.to_dict()
    summary["init_folds"] = None if init_folds is None else str(init_folds)
    summary["baseline"] = cross_validate_baseline(examples, labels, fold_of, config.preprocess,
                                                  config.min_side)
    summary["histories"] = [r.history for r in sorted(results, key=lambda r: r.fold)]
    summary["oof"] = [{"name": e.name, "group": e.group, "label": e.label, "fold": int(f),
                       "probabilities": [float(p) for p in row], "threshold": float(t)}
                      for e, f, row, t in zip(examples, fold_of, summary.pop("_probs"), thresholds,
                                              strict=True)]
    if keep_models is not None and is_main_process():  # renamed into place: never half a file
        partial = keep_models / "cv.json.partial"
        partial.write_text(json.dumps(summary) + "\n")
        partial.replace(keep_models / "cv.json")
    return summary


def _check_init_unseen(config: TrainConfig, examples: Sequence[Example]) -> None:
    """Refuse starting every fold from weights that learnt from some of these films: each fold model
    would then score, out of fold, films it had already seen."""
    seen = learnt_by(config.init, film_identities(examples, config.min_side))
    if seen == 0:
        return
    what = (f"learnt from {seen} of these {len(examples)} films" if seen is not None
            else "records no list of the films it learnt from")
    raise ValueError(f"every fold would start from {config.init}, which {what}: its out-of-fold scores "
                     "would not be out of sample. Start each fold from the fold models of a "
                     "cross-validation of these films (--init-folds) or from imagenet")


def _check_same_folds(folder: Path, examples: Sequence[Example], fold_of: np.ndarray) -> None:
    """Refuse fold models kept from other films or other folds: a fold model that trained on a film
    this cross-validation scores out of fold would leak."""
    try:
        kept = {film["name"]: film["fold"] for film in json.loads((folder / "cv.json").read_text())["oof"]}
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{folder} holds no readable cv.json of kept fold models: {error}") from error
    moved = [e.name for e, fold in zip(examples, fold_of, strict=True) if kept.get(e.name) != fold]
    if moved or len(kept) != len(examples):
        raise ValueError(f"the fold models in {folder} were cross-validated on other films or folds "
                         f"({len(moved)} of {len(examples)} films differ); use the same data, folds and seed")
    missing = [k for k in range(int(fold_of.max()) + 1)
               if not (folder / f"fold{k}" / "config.json").is_file()]
    if missing:
        raise ValueError(f"{folder} lacks the fold models {', '.join(f'fold{k}' for k in missing)}")


def _fold_auc(scores: np.ndarray, labels: list[str]) -> str:
    """AUC of the last score column (the most severe class) for malignant vs rest, for the log."""
    auc = _auc(scores[:, -1], np.array([label == "malignant" for label in labels]))
    return "n/a" if auc is None else f"{auc:.3f}"


def _auc(score: np.ndarray, is_malignant: np.ndarray) -> float | None:
    """Malignant-vs-rest AUC of one score per film; None without films of both kinds."""
    if is_malignant.all() or not is_malignant.any():
        return None
    return float(roc_auc_score(is_malignant, score))


def summarise(scores: np.ndarray, targets: np.ndarray, fold_of: np.ndarray, labels: list[str],
              kind: str, groups: Sequence[str] | None = None) -> dict:
    """Pooled and per-fold metrics of out-of-fold scores with cross-fitted calibration/threshold; the
    AUCs' intervals resample whole patients (``groups``: each film's) when given."""
    folds = int(fold_of.max()) + 1
    probs = np.zeros((len(targets), len(labels)))
    per_film_threshold = np.zeros(len(targets))
    for k in range(folds):
        # fold k's calibration and threshold from the other folds alone, the threshold picked on their
        # scores through that same calibration (as the shipped one is): no label of fold k in either
        inside, other = fold_of == k, fold_of != k
        weight, bias = fit_calibration(scores[other], targets[other], len(labels))
        probs[inside] = apply_calibration(scores[inside], weight, bias)
        calibrated_other = apply_calibration(scores[other], weight, bias)
        per_film_threshold[inside] = pick_threshold(targets[other], calibrated_other, labels)
    malignant = malignant_index(labels)
    raw_probs = apply_calibration(scores, *uncalibrated(kind, len(labels), scores.shape[1]))
    weight, bias = fit_calibration(scores, targets, len(labels))  # what the final model ships with
    # the shipped threshold is picked on the shipped calibration's probabilities, so its rule (90%
    # sensitivity out of fold) holds of what runs; the AUCs and ECE use the cross-fitted ones
    shipped = apply_calibration(scores, weight, bias)
    threshold = pick_threshold(targets, shipped, labels)
    pooled = evaluate_predictions(targets, probs, labels, threshold=threshold, groups=groups)
    pooled.update(rates_at(targets, shipped, labels, threshold))
    calibration = {
        "method": "multinomial logistic regression on the film scores (Platt / vector scaling)",
        "weight": weight, "bias": bias,
        "fitted_on": "all out-of-fold film scores (the figures above used cross-fitted maps)",
    }
    pooled.update(cross_fitted_rates(targets, probs, labels, per_film_threshold))
    if malignant is not None:
        calibration["ece_malignant_uncalibrated"] = expected_calibration_error(
            targets == malignant, raw_probs[:, malignant])
        # the calibration is a regression on every class score, so it can order films against the
        # network's own malignancy score (a weak network on few films: a CLI walk's folds went from
        # AUC 0.41 to 0.59): the figures are then the pair's, and the heat maps, which explain the
        # network, show evidence against malignancy
        agreement = float(stats.spearmanr(raw_probs[:, malignant], shipped[:, malignant]).statistic)
        calibration["rank_agreement_malignant"] = agreement if np.isfinite(agreement) else None  # one score
        if agreement < 0:
            log.warning("the calibration orders the films against the network's own malignancy score "
                        "(Spearman %.2f): the network ranks them the wrong way round, the figures are those "
                        "of the network with this calibration, and its heat maps show evidence against "
                        "malignancy", agreement)
    fold_metrics = []
    for k in range(folds):
        inside = fold_of == k
        metrics = evaluate_predictions(targets[inside], probs[inside], labels,
                                       threshold=float(per_film_threshold[inside][0]), n_resamples=500,
                                       groups=None if groups is None else np.asarray(groups)[inside])
        fold_metrics.append({"fold": k, **{key: metrics[key] for key in _FOLD_KEYS},
                             "auc_malignant_uncalibrated": None if malignant is None else _auc(
                                 raw_probs[inside, malignant], targets[inside] == malignant)})
    aucs = [f["auc_malignant"] for f in fold_metrics if f["auc_malignant"] is not None]
    return {
        **pooled,
        "split": "cross-validation",
        "n_folds": folds,
        "folds": fold_metrics,
        "auc_malignant_fold_mean": float(np.mean(aucs)) if aucs else None,
        "auc_malignant_fold_sd": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else None,
        "auc_abnormal": auc_abnormal(targets, probs, labels, groups=groups),
        "threshold": threshold,
        "threshold_rule": THRESHOLD_RULE,
        "cross_fitting": NESTED_CROSS_FITTING,
        "calibration": calibration,
        "optimistic": ("'sensitivity' and 'specificity' use the threshold fitted on these same "
                       "pooled out-of-fold predictions; the '_cross_fitted' ones, and the subgroups', "
                       "do not. AUCs, "
                       "ECE and the confusion matrix use cross-fitted calibration (not optimistic), "
                       "but the recipe itself was chosen by comparing cross-validated AUCs."),
        "_probs": probs,
        "_thresholds": per_film_threshold,
    }
