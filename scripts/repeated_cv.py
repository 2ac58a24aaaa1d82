"""Repeated cross-validation: how far apart runs of one recipe land, and does averaging them help?

    python -m mammo cv --data DIR [recipe options] --seed 1 --oof-out runs/seed1.json   # one per seed
    python scripts/repeated_cv.py runs/seed0.json runs/seed1.json runs/seed2.json

Each input holds one cross-validation's out-of-fold predictions (``cv --oof-out``, or the ``cv.json``
that ``--keep-models`` writes) of the same films; other seeds give other folds and another training
order. Prints one JSON object:

- ``runs``: each run's figures (AUC with its bootstrap CI, ECE, accuracy), then their mean, SD and
  range: the spread a single run's figure carries beyond its own CI, which covers other films only;
- ``averaged``: each film's probabilities averaged over the runs, then scored. Every run scored the
  film with a model that never saw its patient, so this is an out-of-fold estimate of an ensemble
  of that many models, each trained on a different random share of the other patients;
- ``averaged_vs_mean_run``: AUC(averaged) minus the runs' mean AUC (the gain over a typical run);
- ``averaged_vs_run``: AUC(averaged) - AUC(run) for each run, paired on the same films, with a 95% CI
  from a bootstrap over patients (the models held fixed: it leaves out the training variance that
  the runs' spread shows);
- ``averaged_at_mean_threshold``: where every input records its ``threshold`` (a ``cv.json``), the
  averaged probabilities' sensitivity and specificity at the mean of those thresholds (what
  ``evaluate`` with several ``--model`` uses; fitted on these same predictions, so optimistic).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mammo.data import label_order  # noqa: E402
from mammo.errors import said_in_one_line  # noqa: E402
from mammo.metrics import evaluate_predictions, malignant_index, paired_auc_difference  # noqa: E402

__all__ = ["read_runs", "paired_or_why", "calls_at", "main"]
_REPORTED = ("n", "auc_malignant", "auc_malignant_ci95", "auc_abnormal", "ece_malignant", "accuracy")


def read_runs(paths: list[Path]) -> tuple[list[dict], np.ndarray, list[str], list[float] | None]:
    """The films (name, group, label; sorted by name), each run's probabilities (runs, films, classes),
    the classes in that order (as recorded, else the films' labels in severity order) and each run's
    threshold (None unless every run records one); SystemExit when the runs did not score the same
    films with the same classes."""
    runs, thresholds, classes = [], [], set()
    for path in paths:
        record = json.loads(Path(path).read_text())
        summary = record if isinstance(record, dict) else {"oof": record}
        runs.append({film["name"]: film for film in summary["oof"]})
        thresholds.append(summary.get("threshold"))
        if summary.get("classes"):
            classes.add(tuple(summary["classes"]))
    if len(classes) > 1:
        raise SystemExit(f"the runs record other classes: {sorted(classes)}")
    names = sorted(runs[0])
    for path, run in zip(paths, runs, strict=True):
        if sorted(run) != names:
            raise SystemExit(f"{path} scored other films than {paths[0]}: not runs of the same data")
        if any(run[n][key] != runs[0][n][key] for n in names for key in ("label", "group")):
            raise SystemExit(f"{path} gives some film another label or patient than {paths[0]}")
    films = [{key: runs[0][n][key] for key in ("name", "group", "label")} for n in names]
    probs = np.array([[run[n]["probabilities"] for n in names] for run in runs])
    order = list(classes.pop()) if classes else label_order(film["label"] for film in films)
    return films, probs, order, None if None in thresholds else [float(t) for t in thresholds]


def paired_or_why(malignant: np.ndarray, before: np.ndarray, after: np.ndarray, groups: list[str],
                  resamples: int) -> dict:
    """``after``'s malignant-vs-rest AUC minus ``before``'s on the same films (patient-paired bootstrap
    CI), or why there is none."""
    return (paired_auc_difference(malignant, before, after, groups, resamples)
            or {"difference": None, "why": "too few resamples hold both classes"})


def calls_at(labels: np.ndarray, probs: np.ndarray, classes: list[str], threshold: float) -> dict:
    """The threshold, sensitivity and specificity of calling malignant at ``threshold``."""
    called = evaluate_predictions(labels, probs, classes, threshold, n_resamples=0)
    return {key: called[key] for key in ("threshold", "sensitivity", "specificity")}


@said_in_one_line
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="out-of-fold predictions of each run (JSON)")
    parser.add_argument("--resamples", type=int, default=2000)
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give at least two runs")
    films, probs, classes, thresholds = read_runs(args.runs)
    labels = [film["label"] for film in films]
    column = malignant_index(classes)
    if probs.shape[2] != len(classes) or column is None or not set(labels) <= set(classes):
        raise SystemExit(f"the runs give {probs.shape[2]} probabilities per film; their films hold the "
                         f"classes {classes} (this script compares malignant-vs-rest AUCs)")
    groups = [film["group"] for film in films]

    def figures(p: np.ndarray) -> dict:
        report = evaluate_predictions(np.array(labels), p, classes, n_resamples=args.resamples, groups=groups)
        return {key: report[key] for key in _REPORTED}

    runs = [{"file": str(path), **figures(p)} for path, p in zip(args.runs, probs, strict=True)]
    aucs = [run["auc_malignant"] for run in runs]
    averaged = probs.mean(axis=0)
    malignant = np.array(labels) == classes[column]
    averaged_figures = figures(averaged)
    report = {
        "runs": runs,
        "auc_malignant_mean": statistics.mean(aucs), "auc_malignant_sd": statistics.stdev(aucs),
        "auc_malignant_range": [min(aucs), max(aucs)],
        "averaged": averaged_figures,
        "averaged_vs_mean_run": averaged_figures["auc_malignant"] - statistics.mean(aucs),
        "averaged_vs_run": [
            {"file": str(path), **paired_or_why(malignant, p[:, column], averaged[:, column], groups,
                                                args.resamples)}
            for path, p in zip(args.runs, probs, strict=True)],
        "averaged_at_mean_threshold": None,
    }
    if thresholds is not None:
        report["averaged_at_mean_threshold"] = calls_at(np.array(labels), averaged, classes,
                                                        float(np.mean(thresholds)))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
