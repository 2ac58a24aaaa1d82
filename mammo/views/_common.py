"""Figures in words, shared by the views: numbers, intervals, AUCs with their CIs, durations, ids."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ..config import data_name
from ..metrics import (
    resampled_patients,
    too_few_for_an_interval,
)

__all__ = ["METRIC_NAMES", "ONE_SCORE_MEANS", "no_interval", "auc_and_ci", "percent", "literal", "rounded",
           "duration"]


# what each metric key means, for tables a person reads (the JSON keeps the keys)
METRIC_NAMES = {
    "n": "films evaluated",
    "auc_malignant": "AUC, malignant vs rest",
    "auc_malignant_ci95": "95% CI of that AUC (bootstrap)",
    "auc_macro": "AUC, mean over the classes",
    "accuracy": "accuracy (most likely class)",
    "balanced_accuracy": "balanced accuracy",
    "sensitivity": "sensitivity for malignant, at the review cut-off",
    "specificity": "specificity, at the review cut-off",
    "ece_malignant": "calibration error (ECE, malignant)",
    "ece_malignant_by_chance95": "ECE a perfectly calibrated model shows on these films by chance (95%)",
}


# a model that gives every film the same malignancy score ranks nothing: its AUC has no meaning, its
# calibration error only says how near that one score is to the share of malignant films, and its flag
# flags every film or none (a walk read "specificity 1.000" of such a model as a figure)
ONE_SCORE_MEANS = {"auc_malignant": "— (one score for every film)",
                   "auc_malignant_ci95": "—",
                   "ece_malignant": "{value} (one score for every film)",
                   "sensitivity": "{value} (one score for every film: it flags all or none)",
                   "specificity": "{value} (one score for every film: it flags all or none)"}


def _fmt(value: Any, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _ci(pair: Sequence[float] | None, digits: int = 2) -> str:
    """A confidence interval as ``low–high``; "—" when there is none."""
    return "—" if not pair else f"{pair[0]:.{digits}f}–{pair[1]:.{digits}f}"


def no_interval(ci: Sequence[float] | None, figures: Mapping[str, Any]) -> str | None:
    """Why a malignant-vs-rest AUC in ``figures`` has no interval ``ci`` (too few films of a class, or
    where patients are resampled, too few patients); None when it has one, or there is no AUC."""
    if ci or figures.get("auc_malignant") is None:
        return None
    return f"none: {too_few_for_an_interval(figures)}"


def auc_and_ci(figures: Mapping[str, Any], label: str = "95% CI ") -> str:
    """'0.73 (95% CI 0.62–0.84)' from a metrics dict (``label`` names the interval; '0.73 (0.62–0.84)'
    in a table whose header says it; :func:`_by_patient` marks one over patients); an AUC too few films
    give no interval says so."""
    auc, ci = figures.get("auc_malignant"), figures.get("auc_malignant_ci95")
    if auc is None:
        return "—"
    return f"{auc:.2f} ({no_interval(ci, figures) or f'{label}{_ci(ci)}{_by_patient(figures)}'})"


def _by_patient(figures: Mapping[str, Any]) -> str:
    """', by patient' after an interval whose bootstrap drew whole patients (figures made after v3;
    v1-v3's drew films), else ""."""
    drawn = figures.get("auc_malignant_ci95") and resampled_patients(figures)
    return ", by patient" if drawn else ""


def percent(score: float | None) -> str:
    """A score already on the 0-100 scale, as the UI shows every score: one decimal and a % sign."""
    return "—" if score is None else f"{score:.1f} %"


def literal(text: str) -> str:
    """``text`` as Markdown that shows it as typed: HTML and Markdown syntax escaped, as are ``:``
    (the page's GFM turns a bare URL into a link) and ``$`` (its KaTeX renders ``$$...$$``); each
    line break is kept and each line's leading blanks dropped (an indented line would be code). A
    visitor's notes are stored verbatim and must not render as a link, an image or a heading."""
    escaped = re.sub(r"([\\`*_{}\[\]()#+\-.!|~>:$=])", r"\\\1", html.escape(text, quote=False))
    return "  \n".join(line.strip() for line in escaped.splitlines())


def rounded(value: Any, digits: int = 4) -> Any:
    """``value`` with every float rounded (nested dicts and lists too), for showing JSON to people."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, Mapping):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def duration(seconds: float) -> str:
    """Seconds as '3 min 05 s' (or '42 s')."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


_CASE_ID = re.compile(r"[0-9a-f]{32}")


def _short_id(text: str) -> str:
    """A case id (32 hex digits) cut to the 8 the pickers show; any other text as it is."""
    return text[:8] if _CASE_ID.fullmatch(text) else text


def _copy_names(sources: Sequence[str]) -> list[str]:
    """Which data ``sources`` are, by name: the same folder at another path, or a Hub dataset at another
    commit, is the same copy of the films."""
    return sorted(data_name(str(source).rstrip("/")).split("@")[0] for source in sources)


def _data_names(sources: Sequence[str]) -> str:
    """Data folders or repos as people read them (:func:`~mammo.config.data_name`: "mias1024", not the
    server's path), in italics."""
    return ", ".join(f"*{data_name(str(source).rstrip('/')) or source}*" for source in sources)
