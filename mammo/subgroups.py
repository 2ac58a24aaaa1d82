"""Who a model fails: its figures per subgroup of films (tissue type, breast density, age band).

Subgroups come from each film's metadata: mini-MIAS's ``tissue`` (F, G, D), and the ``density``
and ``age`` submitted cases may carry. A subgroup is reported with its counts, and its AUCs with
bootstrap CIs where it holds both classes; small subgroups give wide intervals, and the counts say
how small.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .data import Example
from .metrics import auc_abnormal, auc_with_ci, malignant_index, rates_at

__all__ = ["SUBGROUPS", "Subgroup", "subgroup_metrics"]


def _age_band(age: object) -> str | None:
    try:
        years = int(age)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return "under 50" if years < 50 else "50-69" if years < 70 else "70 and over"


@dataclass(frozen=True)
class Subgroup:
    """One way to divide films: the metadata key it reads and how a value is named."""

    key: str
    name: Callable[[object], str | None]


SUBGROUPS: dict[str, Subgroup] = {
    "tissue": Subgroup("tissue", {"F": "fatty", "G": "fatty-glandular", "D": "dense-glandular"}.get),
    "density": Subgroup("density", lambda v: f"ACR {v}" if v in ("A", "B", "C", "D") else None),
    "age band": Subgroup("age", _age_band),
}


def _of(threshold: float | np.ndarray | None, films: np.ndarray) -> float | np.ndarray | None:
    """The threshold of these films: the one threshold, or theirs."""
    return threshold[films] if isinstance(threshold, np.ndarray) else threshold


def _figures(targets: np.ndarray, probs: np.ndarray, labels: Sequence[str],
             threshold: float | np.ndarray | None, n_resamples: int, groups: np.ndarray) -> dict:
    malignant = malignant_index(labels)
    out: dict = {"n": int(targets.size), "counts": {label: int((targets == i).sum())
                                                    for i, label in enumerate(labels)}}
    if malignant is not None:
        is_malignant = targets == malignant
        out["auc_malignant"] = auc_with_ci(is_malignant, probs[:, malignant], n_resamples, groups=groups)
        if threshold is not None:
            out.update(rates_at(targets, probs, labels, threshold))
    out["auc_abnormal"] = auc_abnormal(targets, probs, labels, n_resamples, groups)
    return out


def subgroup_metrics(examples: Sequence[Example], targets: np.ndarray, probs: np.ndarray,
                     labels: Sequence[str], threshold: float | np.ndarray | None = None,
                     n_resamples: int = 1000, subgroups: Mapping[str, Subgroup] = SUBGROUPS) -> dict:
    """``{grouping: {subgroup: figures}}`` for every grouping some film has metadata for.

    Figures: ``n``, ``counts`` per label, ``auc_malignant`` and ``auc_abnormal`` (``{auc, ci95}``
    or None when the subgroup lacks a class), and with ``threshold`` (one, or each film's: out of fold,
    the one fitted on the other folds) the malignant sensitivity and specificity at it.
    """
    out: dict = {}
    patients = np.array([e.group for e in examples])  # the intervals resample whole patients
    for grouping, subgroup in subgroups.items():
        names = np.array([subgroup.name(e.metadata.get(subgroup.key)) or "" for e in examples])
        present = sorted({str(n) for n in names if n})  # plain str: JSON encoders refuse numpy keys
        if present:
            out[grouping] = {name: _figures(targets[names == name], probs[names == name], labels,
                                            _of(threshold, names == name), n_resamples,
                                            patients[names == name]) for name in present}
    return out
