"""What the Models tab shows: the versions table, a version's card and recorded figures, the rollback
question, the served version's estimate and recipe."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..choices import TRAINING_DEFAULTS
from ..config import data_names
from ..metrics import (
    OUT_OF_FOLD,
    flagged_malignant,
    malignant_films,
    recorded_estimate,
    recorded_evaluations,
)
from ..store.registry.base import is_newer
from ..timestamps import human_time
from ._common import _copy_names, _data_names, _fmt, auc_and_ci
from .retrain import AUC_CURVE, confusion_frame, curves_frame, has_calibration, reliability_frame, roc_frame

__all__ = ["VERSION_COLUMNS", "VERSIONS_EXPLAINED", "flagged_text", "VERSIONS_SEEN_WHOLE", "card_on_the_page",
           "versions_label", "versions_rows", "version_estimate", "republish_question", "rollback_question",
           "estimate_metrics", "evaluations", "version_figures", "retrain_recipe_text", "smallest_film_side",
           "small_films_warning", "estimate_text"]


VERSION_COLUMNS = ["version", "served", "published", "trained", "parent", "training images",
                   "AUC malignant, cross-validated (95% CI)", "AUC malignant, recorded split (95% CI)",
                   "malignant films flagged, recorded split", "accuracy, recorded split",
                   "balanced accuracy, recorded split", "recorded split's films"]


# under the versions table: why the served version need not be the best on the recorded split (a walk
# read v3 served while v2 scored higher on the held-out films as the gate contradicted)
VERSIONS_EXPLAINED = (
    "*Served* is the version predictions come from. A version made by **Retrain** is served only when "
    "the promotion gate passes it on the fixed held-out patients; a trainer may serve an earlier version "
    "again (a copy, as its *parent* says). The versions shipped **with the app** were chosen by the "
    "project on patient-grouped cross-validation over the base films of the training and validation "
    "patients (the held-out patients left out), where one was run (the "
    "*cross-validated* column), not by that gate: on the held-out films (the *recorded split* columns, "
    "a few malignant films) a shipped version can score below an earlier one.")


def flagged_text(metrics: Mapping[str, Any]) -> str:
    """How many of the evaluated malignant films a model's review flag caught: "5 of 6"; "—" when not
    recorded (what the promotion gate compares beside the AUC)."""
    flagged = flagged_malignant(metrics)
    return "—" if flagged is None else f"{flagged} of {malignant_films(metrics)}"


VERSIONS_SEEN_WHOLE = 4  # about as many rows as the table shows before it scrolls (a phone's)


_HEADING = re.compile(r" {0,3}#{1,5}(?=[ \t]|$)")  # Markdown's ATX headings of levels 1 to 5


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def card_on_the_page(card: str) -> str:
    """A model card as the Models tab shows it: each heading one level down, so that the page's own
    title stays its only first-level heading (a screen reader's outline of the page had two), code
    blocks as they are (a fence is closed by one of its own kind, at least as long)."""
    lines, fence = [], ""
    for line in card.splitlines():
        found = _FENCE.match(line)
        if found and (not fence or (found.group(1)[0] == fence[0] and len(found.group(1)) >= len(fence))):
            fence = "" if fence else found.group(1)
        elif not fence and _HEADING.match(line):
            line = line.replace("#", "##", 1)
        lines.append(line)
    return "\n".join(lines)


def versions_label(count: int) -> str:
    """The versions table's title: how many there are, and past a few that the table scrolls to them
    (a walk on a phone saw four versions of five, and nothing said there were more)."""
    scrolls = ": scroll the table for the older ones" if count > VERSIONS_SEEN_WHOLE else ""
    return f"Versions ({count}, newest first{scrolls})"


def versions_rows(versions: Sequence[Mapping[str, Any]], served: str | None = None,
                  newest_problem: str | None = None) -> list[list[Any]]:
    """One row per version, newest first; ``served`` is marked, and versions newer than it as not yet
    served, or as unservable while the app reports ``newest_problem`` (a damaged newest version)."""
    newer_mark = "✕ cannot be served" if newest_problem else "not served yet"
    rows = []
    for v in reversed(versions):
        metrics, data, cv = v.get("metrics") or {}, v.get("data") or {}, v.get("cv") or {}
        # a packaged version is published in a store when the app first starts there, long after it
        # was made: "with the app", not that moment
        published = (f"error: {v['error']}" if v.get("error") else "with the app" if v.get("packaged") else
                     human_time(v.get("published_at") or v.get("created_at")))
        trained = human_time(v.get("created_at")).split(",")[0]  # the day
        parent = v.get("parent") or "—"
        if v.get("rollback_of"):  # its figures are those of the version it copies
            parent = f"{parent} (a copy of {v['rollback_of']}, served again)"
        rows.append([
            v["version"],
            "● served" if v["version"] == served else
            newer_mark if served and is_newer(v["version"], served) else "",
            published, trained, parent,
            data.get("n_train", "—"),
            auc_and_ci(cv, label=""), auc_and_ci(metrics, label="") + _on_validation(v),
            flagged_text(metrics),
            _fmt(metrics.get("accuracy")), _fmt(metrics.get("balanced_accuracy")), metrics.get("n", "—"),
        ])
    return rows


def _on_validation(row: Mapping[str, Any]) -> str:
    """A mark after a version's figures where its recorded split is the validation set that chose its
    epoch or threshold (a version trained with no held-out patients): optimistic, not an estimate."""
    on_validation = (row.get("split") or {}).get("metrics_on") == "validation" and row.get("metrics")
    return " (validation: optimistic)" if on_validation else ""


def version_estimate(row: Mapping[str, Any]) -> str:
    """A version's recorded estimate in a few words, from a ``versions()`` row: out of fold where it
    was cross-validated, else on its own split."""
    estimate = recorded_estimate(row)
    if estimate is None:
        return "no evaluation recorded"
    name, metrics = estimate
    if name == OUT_OF_FOLD:
        return (f"malignant-vs-rest AUC {auc_and_ci(metrics)}, {metrics.get('n_folds')}-fold "
                f"cross-validation by patient ({metrics.get('n')} films)")
    return f"malignant-vs-rest AUC {auc_and_ci(metrics)} on its {name} set ({metrics.get('n')} films)"


_SPLIT_KEYS = ("holdout", "val", "seed")  # a patient split, as a version records it


def _same_holdout(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two ``versions()`` rows were both evaluated on held-out films of the same patient split
    (the same fractions and seed, as many films, an AUC each)."""
    splits = [row.get("split") or {} for row in (a, b)]
    metrics = [row.get("metrics") or {} for row in (a, b)]
    return (all(split.get("name") == "holdout" for split in splits)
            and all(split.get(key) == splits[0].get(key) for split in splits for key in _SPLIT_KEYS)
            and metrics[0].get("n") == metrics[1].get("n")
            and all(m.get("auc_malignant") is not None for m in metrics))


def republish_question(version: str, broken: str) -> str:
    """The question before publishing the served ``version`` again over a newer one that cannot be
    served (``broken`` says why)."""
    return (f"Publish **{version}** again as the newest version? {broken}, so {version} is still served "
            "and every retrain is refused until a version that loads is the newest. It is published as a "
            "new version (the history is kept).")


def rollback_question(version: str, served: str, rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The question before serving ``version`` again instead of ``served`` (``rows``: ``versions()``
    by name): each one's recorded estimate, and, where those are of different kinds (out of fold
    against a held-out set), both on the same held-out films when both were scored there."""
    old, new = rows[version], rows[served]
    kinds = [(recorded_estimate(row) or ("none",))[0] for row in (old, new)]
    compared = ""
    if kinds[0] != kinds[1]:
        compared = (" These two estimates are of different kinds, so they do not compare the versions on "
                    "the same films.")
        if _same_holdout(old, new):
            copies = [(row.get("data") or {}).get("sources") or [] for row in (old, new)]
            other = all(copies) and _copy_names(copies[0]) != _copy_names(copies[1])
            on = [f" on {_data_names(sources)}" if other else "" for sources in copies]
            compared += (f" On the same {old['metrics']['n']} held-out films, never trained on by either: "
                         f"**{version}** AUC {auc_and_ci(old['metrics'])}{on[0]}, **{served}** "
                         f"{auc_and_ci(new['metrics'])}{on[1]}.")
            if any(on):  # the Retrain tab's gate scores both on one copy: another figure for the same films
                compared += (" The two were scored on different copies of these films; the Retrain tab's "
                             "gate scores both on one copy, so its figures can differ.")
    return (f"Serve **{version}** again instead of **{served}**, for every visitor? As recorded: "
            f"**{version}** {version_estimate(old)}; **{served}** {version_estimate(new)}.{compared} "
            "Each version's card has the rest. It is published as a new version (the history is kept).")


def estimate_metrics(mammo: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """The served version's estimate to plot (:func:`~mammo.metrics.recorded_estimate`), named."""
    estimate = recorded_estimate(mammo)
    if estimate is None:
        return {}
    name, metrics = estimate
    return {f"{mammo.get('version') or 'served'}, {name}": metrics}


def evaluations(mammo: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every evaluation a version's config records (:func:`~mammo.metrics.recorded_evaluations`),
    named by the version and what it was computed on."""
    version = mammo.get("version") or "model"
    return {f"{version}, {kind}": metrics for kind, metrics in recorded_evaluations(mammo)}


def version_figures(mammo: Mapping[str, Any]) -> tuple[str, pd.DataFrame, pd.DataFrame, pd.DataFrame,
                                                       pd.DataFrame, pd.DataFrame]:
    """A version's recorded figures for the Models tab, without retraining: a caption, ROC, the
    training losses, the validation AUC per epoch, reliability, and the confusion matrix of its
    first evaluation."""
    named = evaluations(mammo)
    history = (mammo.get("training") or {}).get("history") or []
    first = next(iter(named), None)
    reliability = reliability_frame(named)
    caption = (f"**{mammo.get('version', 'This version')}**, as recorded when it was made: "
               + ("; ".join(f"{name} ({m.get('n')} films)" for name, m in named.items()) or "no evaluation")
               + f". Training curves: {len(history)} epoch(s)."
               + ("" if has_calibration(reliability) else " No calibration recorded.")
               + (f" Confusion matrix: {first}." if first else ""))
    confusion = confusion_frame(named[first]) if first else confusion_frame({})
    return (caption, roc_frame(named), curves_frame(history), curves_frame(history, AUC_CURVE),
            reliability, confusion)


def retrain_recipe_text(mammo: Mapping[str, Any]) -> str:
    """What a retrain of the served version runs (its recorded recipe), in a sentence."""
    training = mammo.get("training") or {}
    # a cross-validated version trained on its validation patients too: its retrain calibrates on them
    seen = bool(mammo.get("cv")) and bool((mammo.get("split") or {}).get("val"))
    caveat = (" The served version was trained on the validation patients as well (its recipe was "
              "cross-validated), so a retrain that starts from it fits its calibration and threshold on "
              "films it has seen: they come out optimistic, and the verdict says so. Untick *Start from "
              "the current version* to avoid it." if seen else "")
    if training.get("recipe") != "patch":
        return ("A retrain fine-tunes the whole-film classifier for the epochs chosen above; with its "
                "validation patients it keeps the best epoch and may stop early." + caveat)
    film = training.get("film_epochs") or 0
    then = (f", then {film} epochs of whole-film fine-tuning (the served version's recipe), so each "
            "retrain takes longer than the slider says" if film else "")
    patch = training.get("patch_size") or _PATCH_SIZE
    small = (f" Keep films at least {smallest_film_side(training)} px (four of its {patch} px patches "
             f"across): on smaller ones {_SMALL_FILMS}.")
    return (f"A retrain runs the lesion-aware recipe: the epochs chosen above of patch training{then}."
            f"{small}{caveat}")


_PATCH_SIZE = TRAINING_DEFAULTS["patch_size"]  # for a config that does not record it


_SMALL_FILMS = ("hardly any patch lies inside the breast: the model can end up giving every film the same "
                "answer, and the gate then refuses it")


def smallest_film_side(training: Mapping[str, Any]) -> int | None:
    """The smallest film side a retrain of this recipe (a config's ``training``) is worth running at:
    four patches across for the lesion-aware recipe; None for the whole-film one (any size works)."""
    if training.get("recipe") != "patch":
        return None
    return 4 * (training.get("patch_size") or _PATCH_SIZE)


def small_films_warning(training: Mapping[str, Any]) -> str | None:
    """Why a retrain of this recipe (a config's ``training``, at the image size it records) is likely to
    fail, when that size is below :func:`smallest_film_side`; None when it is not."""
    size, smallest = training.get("image_size"), smallest_film_side(training)
    if smallest is None or size is None or size >= smallest:
        return None
    return (f"At {size} px, below the {smallest} px this recipe needs (four of its patches across), "
            f"{_SMALL_FILMS}.")


def estimate_text(mammo: Mapping[str, Any]) -> str:
    """One paragraph: the served version and its estimated performance, named by split."""
    version = mammo.get("version") or "the served model"
    lines = []
    cv = mammo.get("cv")
    if cv:
        abnormal = cv.get("auc_abnormal") or {}
        lines.append(
            f"**Served: {version}.** Estimated by {cv.get('n_folds')}-fold cross-validation by patient "
            f"({cv.get('n')} films, out of fold): malignant-vs-rest AUC {auc_and_ci(cv)}, "
            f"abnormal-vs-normal AUC "
            f"{_fmt(abnormal.get('auc'), 2)}, calibration error (ECE) {_fmt(cv.get('ece_malignant'), 3)}.")
    metrics = mammo.get("metrics") or {}
    split = (mammo.get("split") or {}).get("name", "evaluation")
    if metrics and (not cv or split != "cross-validation"):
        lead = "" if cv else f"**Served: {version}.** "
        sources = data_names((mammo.get("data") or {}).get("sources") or [])
        # named, and said to be its own: a retrain scores it again on this install's base data (the
        # walk read the two figures, 0.67 here and 0.65 in the retrain's table, as a contradiction)
        of = f" of {sources}" if sources else ""
        lines.append(f"{lead}On its {split} set when it was trained ({metrics.get('n')} films{of}): "
                     f"malignant-vs-rest AUC {auc_and_ci(metrics)}.")
    return " ".join(lines) or f"**Served: {version}.** No evaluation recorded."
