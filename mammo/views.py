"""Display values for the app: tables, plot frames and short texts built from results (no UI)."""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from .choices import LESION_MAP, PATCH_STAGE
from .config import GATE_METRICS, data_name, data_names
from .metrics import (
    FEWEST_FOR_AN_INTERVAL,
    OUT_OF_FOLD,
    flagged_malignant,
    malignant_films,
    recorded_estimate,
    recorded_evaluations,
    recorded_value,
    resampled_patients,
    too_few_for_an_interval,
)
from .store.cases import label_conflict_text
from .store.cases.schema import NOTHING_STORED
from .store.gate import (
    ALARMS_REFUSED,
    FLAG_REFUSED,
    LINE_REFUSED,
    flag_kept,
    flags_every_film,
    gives_every_film_one_score,
)
from .store.registry.base import is_newer
from .timestamps import human_time

__all__ = [
    "score_text",
    "cut_off_text",
    "flag_headline",
    "heatmap_key",
    "auc_and_ci",
    "no_interval",
    "version_estimate",
    "rollback_question",
    "republish_question",
    "gate_text",
    "queue_choices",
    "queue_note",
    "offer_text",
    "case_choices",
    "withdrawal_question",
    "uncertainty_text",
    "audit_rows",
    "gate_reason_text",
    "queue_rows",
    "QUEUE_COLUMNS",
    "AUDIT_SHOWN",
    "history_row",
    "HISTORY_COLUMNS",
    "versions_rows",
    "versions_label",
    "card_on_the_page",
    "VERSION_COLUMNS",
    "VERSIONS_EXPLAINED",
    "counts_frame",
    "roc_frame",
    "curves_frame",
    "loss_plot_title",
    "LOSS_CURVES",
    "AUC_CURVE",
    "confusion_frame",
    "evaluations",
    "auto_retrain_text",
    "version_figures",
    "comparison_frame",
    "METRIC_NAMES",
    "verdict_text",
    "retrain_status",
    "running_retrain_text",
    "running_elsewhere_text",
    "last_retrain_text",
    "retrain_failed_text",
    "rejected_rows",
    "REJECTED_COLUMNS",
    "percent",
    "duration",
    "human_time",
    "rounded",
    "reliability_frame",
    "RELIABILITY_COLUMNS",
    "PERFECT_CALIBRATION",
    "has_calibration",
    "estimate_metrics",
    "estimate_text",
    "retrain_recipe_text",
    "smallest_film_side",
    "small_films_warning",
    "metadata_from_fields",
    "receipt_text",
    "correction_text",
    "withdrawal_text",
    "pending_stored_text",
    "unreadable_text",
    "refused_text",
    "bulk_receipt_text",
    "known_image_notes",
    "literal",
    "known_image_text",
]

HISTORY_COLUMNS = ["file", "most likely", "malignancy score (%)", "flagged for review", "model", "note"]
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
    "project on patient-grouped cross-validation over all the base films, where one was run (the "
    "*cross-validated* column), not by that gate: on the held-out films (the *recorded split* columns, "
    "a few malignant films) a shipped version can score below an earlier one.")
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
}


# the gate's metrics (config.GATE_METRICS) as its reason names them: the AUCs said in words, the rest
# with spaces ("balanced accuracy")
_GATE_AUCS = {"auc_malignant": "AUC (malignant vs rest)", "auc_macro": "AUC (mean over the classes)"}
_GATE_METRIC = re.compile(rf"\b(candidate|no) ({'|'.join(GATE_METRICS)})\b")


def gate_reason_text(reason: str) -> str:
    """The gate's reason (``store.gate``: "not promoted: candidate auc_malignant 0.51 < ...") with its
    metric in words."""
    return _GATE_METRIC.sub(
        lambda found: f"{found[1]} {_GATE_AUCS.get(found[2], found[2].replace('_', ' '))}", reason)


def gate_text(summary: Mapping[str, Any]) -> str:
    """The gate's exact reason (it names the films it evaluated on) and where a rejected candidate is
    kept."""
    kept = summary.get("rejected_id")
    return f"Gate: {gate_reason_text(summary['reason'])}." + (
        f" The candidate is kept as `{kept}`." if kept else "")


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


def _flag_words(flagged: bool | None) -> str:
    """The review flag in words, as the headline and the paragraph under it both say it."""
    return "Flagged for review" if flagged else "Not flagged"


def score_text(details: Mapping[str, Any]) -> str:
    """The malignancy score and the review flag in words that cannot contradict the most likely class.

    ``malignancy_score`` and ``threshold`` are both on the 0-100 scale of the details.
    """
    score, threshold = details.get("malignancy_score"), details.get("threshold")
    if score is None:
        return "This model has no *malignant* class, so it gives no malignancy score."
    kind = ("a calibrated probability: of 100 films scored like this, about that many were malignant "
            "in the data it was calibrated on" if details.get("calibrated") else "not calibrated")
    text = f"**Malignancy score: {percent(score)}** (model {details['model_version']}; {kind})."
    if threshold is None:
        return text + " This model records no review cut-off. Research use only: not a diagnosis."
    verdict = f"**{_flag_words(details.get('above_threshold'))}**"
    low = " So low a cut-off flags most films, normal ones too." if threshold < 10 else ""
    return (f"{text} {verdict} at this model's review cut-off of {percent(threshold)}: "
            f"{cut_off_text(details.get('cut_off'))}{low} "
            "The flag is separate from the most likely class above: a film can be most likely "
            "normal and still be flagged. Research use only: not a diagnosis.")


_CUT_OFF_SET_ON = {
    "out of fold": "the score at which it caught 90% of the malignant films of patients it had not "
                   "trained on (cross-validation).",
    "validation": "the score at which it caught 90% of the malignant films of its validation patients "
                  "(not trained on, but they chose the cut-off, so it flatters the model).",
    "validation it had learnt": "set to catch 90% of the malignant films of its validation patients, "
                                "whom the model it was retrained from had learnt: optimistic, so on new "
                                "patients it may catch far fewer.",
    "validation it may have learnt": "set to catch 90% of the malignant films of its validation patients, "
                                     "whom the model it was retrained from may have learnt (it records no "
                                     "list): perhaps optimistic.",
}


def cut_off_text(cut_off: Mapping[str, Any] | None) -> str:
    """How a model's review cut-off was set and what its flag did on held-out patients, in words
    (``predict.cut_off_record``)."""
    if not cut_off:
        return "the score chosen in training to catch 90% of the malignant films."
    text = _CUT_OFF_SET_ON[cut_off["set_on"]]
    flagged, malignant = cut_off.get("held_out_flagged"), cut_off.get("held_out_malignant")
    if malignant:
        text += f" On held-out patients it flagged {flagged} of {malignant} malignant films."
    return text


def flag_headline(details: Mapping[str, Any]) -> str:
    """The headline over a result: the review flag and the score it rests on, so that the most likely
    class (a film is usually most likely normal) is not read as the verdict; empty for a model
    without a malignant class."""
    score, threshold = details.get("malignancy_score"), details.get("threshold")
    if score is None:
        return ""
    if details.get("not_like_a_film"):  # a flag over a photograph would read as a finding
        flag = "" if threshold is None else " and review flag"
        return (f"### Not like a mammogram: its malignancy score ({percent(score)}){flag} mean"
                f"{'' if flag else 's'} little (the note below says why)")
    if threshold is None:
        return f"### Malignancy score {percent(score)} (this model records no review cut-off)"
    return (f"### {_flag_words(details.get('above_threshold'))}: malignancy score {percent(score)}, "
            f"review cut-off {percent(threshold)}")


# the overlay's colour map (OpenCV's jet, mammo.explain.overlay) at a few of its values: (value, RGB);
# the overlay is blended in as strongly as the value is, so the key's colours fade out towards 0
HEATMAP_COLOURS = ((0.0, (0, 0, 128)), (0.125, (0, 0, 255)), (0.375, (0, 255, 255)), (0.625, (255, 255, 0)),
                   (0.875, (255, 0, 0)), (1.0, (128, 0, 0)))


def heatmap_colour_bar(low: str, high: str) -> str:
    """The heat map's colours as a bar between two words, over a film's dark grey (inline HTML in a
    Markdown line; the words beside it say the same for a screen reader)."""
    stops = ", ".join(f"rgba({r}, {g}, {b}, {value:g}) {100 * value:g}%"
                      for value, (r, g, b) in HEATMAP_COLOURS)
    return (f'Key: {html.escape(low)} <span style="display: inline-block; width: 12em; height: 0.9em; '
            f'vertical-align: middle; background: linear-gradient(to right, {stops}), #3a3a3a;"></span> '
            f'{html.escape(high)}')


def heatmap_key(details: Mapping[str, Any]) -> str:
    """What the heat map's colours mean for the method that drew it (empty when none was drawn)."""
    method = details.get("heatmap_method")
    if not method:
        return ""
    if method == LESION_MAP:
        return (f"**Heat map ({method}):** the model's probability that a patch of tissue holds a lesion "
                "(benign or malignant), on one scale for every film: blue low, red high, no colour where "
                "it is near 0 or outside the breast. Colours can be compared between films.\n\n"
                + heatmap_colour_bar("0", "1"))
    # EigenCAM draws the first principal component of the last feature map: no class enters it
    what = ("the strongest pattern of the network's last features (for no class in particular)"
            if method == "EigenCAM" else
            f"where the network's evidence for the most likely class (*{details.get('label')}*) lies")
    flagged_other = (details.get("above_threshold") and method != "EigenCAM"
                     and details.get("label") != "malignant")
    hint = (f" This film is flagged for review while its most likely class is {details.get('label')}: the "
            "map shows the evidence for that class, not for the flag; the Lesion map (where the model has "
            "one) shows where lesions are likely." if flagged_other else "")
    return (f"**Heat map ({method}):** {what}, scaled within this image: red marks this film's strongest "
            "region however weak it is, so colours cannot be compared between films or with the lesion "
            f"map. A model with a lesion map reads only the breast's patches, and its CAM is drawn only "
            f"there.{hint}\n\n" + heatmap_colour_bar("weakest", "strongest in this film"))


def uncertainty_text(details: Mapping[str, Any]) -> str:
    """How much the prediction moves when the film is mirrored, with a note when that is a lot."""
    uncertainty = details.get("uncertainty")
    if not uncertainty:
        return ""
    spread = uncertainty["spread"]
    text = (f"**Uncertainty: {spread:.1f} points.** Scored again upside down (its vertical mirror image), "
            f"the film's class probabilities move by up to {spread:.1f} percentage points.")
    if uncertainty.get("high"):
        text += (" **That is high**: the model is unsure about this film; read its scores with extra "
                 "caution.")
    return text


QUEUE_COLUMNS = ["rank", "offered", "uncertainty (points)", "malignancy score", "most likely", "model",
                 "id (start)"]


def queue_rows(entries: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """The label-next pool as table rows, in the pool's order (the most uncertain first)."""
    return [[rank, human_time(e.get("offered_at")), _fmt(e.get("uncertainty"), 1),
             percent(e.get("malignancy_score")), e.get("label"), e.get("model_version"), e["id"][:12]]
            for rank, e in enumerate(entries, 1)]


def queue_choices(entries: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """The label-next pool's picker: each image by its id's start and its uncertainty, in the pool's
    order."""
    return [(f"{e['id'][:12]} (uncertainty {e.get('uncertainty') or 0:.1f})", e["id"]) for e in entries]


def queue_note(entries: Sequence[Mapping[str, Any]]) -> str:
    """How many images wait for a label."""
    count = len(entries)
    return (f"{count} image{'s' if count > 1 else ''} waiting for a label." if count
            else "No image is waiting for a label.")


def offer_text(entry: Mapping[str, Any]) -> str:
    """An offer for labelling in words: kept (its id, its uncertainty), or waiting already since when."""
    if entry["already_offered"]:
        return (f"This image is already waiting for a label as `{entry['id'][:12]}` (offered "
                f"{entry['offered_at'][:16].replace('T', ' ')} UTC): nothing more to do.")
    spread = entry.get("uncertainty")
    measured = f"uncertainty {spread:.1f} points" if spread is not None else "no uncertainty measured"
    return (f"Offered for labelling as `{entry['id'][:12]}` ({measured}). Thank you: a clinician can now "
            "label it in the Submit case tab.")


AUDIT_SHOWN = ["when", "action", "who", "what"]
_CASE_ID = re.compile(r"[0-9a-f]{32}")


def _short_id(text: str) -> str:
    """A case id (32 hex digits) cut to the 8 the pickers show; any other text as it is."""
    return text[:8] if _CASE_ID.fullmatch(text) else text


# a retrain's audit details whose key read wrong as words ("cases used: 14; cases left out: 1" beside a
# verdict that trained on 13; the details come in the order of their keys); the others read as their key
_AUDIT_NAMES = {
    "cases_used": "cases read",
    "cases_trained_on": "cases trained on",
    "cases_left_out": "cases read that are base films (not trained on)",
    "cases_repeated": "later copies of a case (not trained on)",
    "cases_disputed": "copies of a film under different labels (not trained on)",
    "cases_in_label_conflict": "base films under another label (the base label kept)",
    **{f"{who}_{key}": f"{who} {name}" for who in ("candidate", "current")
       for key, name in (("n", "films scored"), ("auc_malignant", "AUC malignant vs rest"),
                         ("auc_malignant_ci95", "AUC 95% CI"), ("auc_ci_resampled", "interval drawn over"))},
    "label_doubt": "warned",
}


def _audit_value(value: Any) -> str:
    """A detail of an audit event in words: yes/no, an interval as low–high, ids counted and cut."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, float) for v in value):
        return f"{_fmt(value[0])}–{_fmt(value[1])}"  # a confidence interval
    if isinstance(value, list):
        shown = ", ".join(_short_id(str(v)) for v in value[:3])
        return f"{len(value)}: {shown}{', …' if len(value) > 3 else ''}" if value else "none"
    if isinstance(value, float):
        return _fmt(value)
    if isinstance(value, dict):
        return ", ".join(f"{k.replace('_', ' ')} {_audit_value(v)}" for k, v in value.items()
                         if v is not None) or "none"  # a retrain's options: "image size None" said nothing
    return str(value)


def audit_rows(events: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    """Audit events, newest first, as table rows in words (ids shortened; the CSV has them whole)."""
    def what(details: Mapping[str, Any]) -> str:
        details = dict(details)
        if {"was", "label"} <= details.keys():  # a label correction: from which label to which, first
            details = {"label": f"{details.pop('was')} → {details.pop('label')}", **details}
        if "reason" in details:  # a rejection's why before its figures (a walk found it mid-row)
            details = {"reason": details.pop("reason"), **details}
        shown = [f"{_AUDIT_NAMES.get(k, k.replace('_', ' '))}: {_audit_value(v)}" for k, v in details.items()
                 if v is not None]
        return "; ".join(shown)

    return [[human_time(e.get("at")), e.get("action", ""), e.get("user", ""), what(e.get("details") or {})]
            for e in reversed(events)]


def rounded(value: Any, digits: int = 4) -> Any:
    """``value`` with every float rounded (nested dicts and lists too), for showing JSON to people."""
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, Mapping):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [rounded(v, digits) for v in value]
    return value


def history_row(name: str, details: Mapping[str, Any]) -> list[Any]:
    """A prediction as a row of this session's table; its note says why a score is not a fresh one
    (not like a film, a film the model learnt from, a stored case) or is unsure (a high uncertainty)."""
    flagged = details.get("above_threshold")
    score = details.get("malignancy_score")
    stored = f"stored case ({details.get('stored_label') or 'label unknown'})"
    notes = ["not like a mammogram" if details.get("not_like_a_film") else "",
             "a film it learnt from" if details.get("in_training_data") else "",
             stored if details.get("stored_case") else "",
             "high uncertainty" if (details.get("uncertainty") or {}).get("high") else ""]
    return [name, details["label"], "—" if score is None else f"{score:.1f}",  # as the headline: 9.0, not 9
            "—" if flagged is None else ("yes" if flagged else "no"), details["model_version"],
            "; ".join(n for n in notes if n) or "—"]


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
            auc_and_ci(cv, label=""), auc_and_ci(metrics, label=""), flagged_text(metrics),
            _fmt(metrics.get("accuracy")), _fmt(metrics.get("balanced_accuracy")), metrics.get("n", "—"),
        ])
    return rows


def counts_frame(summary: Mapping[str, Mapping[str, int]]) -> pd.DataFrame:
    """Images per label and source (base data / submitted cases), long format for a bar plot."""
    return pd.DataFrame(
        [{"label": label, "source": source, "images": n}
         for label, by_source in summary.items() for source, n in by_source.items()],
        columns=["label", "source", "images"],
    )


def roc_frame(named_metrics: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """ROC points (malignant vs rest) of several models, long format for a line plot."""
    rows = []
    for name, metrics in named_metrics.items():
        roc = metrics.get("roc") or {}
        auc = metrics.get("auc_malignant")
        label = f"{name} (AUC {_fmt(auc, 2)})"
        rows += [{"false positive rate": f, "true positive rate": t, "model": label}
                 for f, t in zip(roc.get("fpr", []), roc.get("tpr", []), strict=True)]
    return pd.DataFrame(rows, columns=["false positive rate", "true positive rate", "model"])


LOSS_CURVES = {"train loss": "train_loss", "validation loss": "val_loss"}
AUC_CURVE = {"validation AUC": "val_auc"}  # the early-stopping score: on its own 0-1 axis, not the losses'


def curves_frame(history: Sequence[Mapping[str, Any]],
                 series: Mapping[str, str] = LOSS_CURVES) -> pd.DataFrame:
    """Training curves per epoch, long format: ``series`` maps each name shown to its key in the
    history (the losses by default; :data:`AUC_CURVE` for the validation AUC). An epoch that records
    its stage (the patch recipe's patches or whole films) names it in the series: the two stages'
    losses are of different kinds and must not read as one curve."""
    rows = [{"epoch": h["epoch"], "value": h[key],
             "series": f"{name}, {h['stage']}" if h.get("stage") else name}
            for h in history for name, key in series.items() if h.get(key) is not None]
    return pd.DataFrame(rows, columns=["epoch", "value", "series"])


def loss_plot_title(losses: pd.DataFrame, aucs: pd.DataFrame) -> str:
    """The loss plot's title for what it holds (:func:`curves_frame` of the losses and of
    :data:`AUC_CURVE`): a cross-validated recipe has no validation films, and the patch recipe
    scores its validation films by AUC only."""
    if (losses["series"] == "validation loss").any():
        return "Training and validation loss per epoch"
    if not aucs.empty:
        return "Training loss per epoch (validation: see the Validation AUC per epoch plot)"
    return "Training loss per epoch (no validation films: the recipe was cross-validated)"


def confusion_frame(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """Confusion matrix with named rows (true) and columns (predicted)."""
    classes = metrics.get("classes") or []
    matrix = metrics.get("confusion_matrix") or []
    frame = pd.DataFrame(matrix, columns=[f"predicted {c}" for c in classes])
    frame.insert(0, "true", classes[: len(frame)])
    return frame


def comparison_frame(current: Mapping[str, Any], candidate: Mapping[str, Any],
                     baseline: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Current vs candidate metrics on the same held-out patients, metrics named in words; with
    ``baseline``, the logistic-regression baseline trained on the candidate's films beside them."""

    def show(key: str, value: Any, figures: Mapping[str, Any]) -> str:
        if gives_every_film_one_score(figures) and key in ONE_SCORE_MEANS:  # a collapsed model
            said = ONE_SCORE_MEANS[key]
            return said.format(value=_fmt(value)) if "{value}" in said else said
        if key == "auc_malignant_ci95":
            return no_interval(value, figures) or _ci(value, 3) + _by_patient(figures)
        return str(value) if key == "n" else _fmt(value)  # JSON turns 1.0 into 1: only n is a count

    models = {"current": current, "candidate": candidate}
    if baseline:
        models["baseline (logistic regression)"] = baseline
    rows = [[name, *(show(k, m.get(k), m) for m in models.values())] for k, name in METRIC_NAMES.items()]
    return pd.DataFrame(rows, columns=["metric", *models])


def _headline(summary: Mapping[str, Any], served: str | None) -> str:
    """'Promoted: v4 is now served.' or 'Not promoted: v3 stays served.', in the past with the version
    served now where that differs (a later retrain or rollback; or a promotion this app never served:
    made by another process, or one it could not load)."""
    version, changed = summary["version"], served not in (None, summary["version"])
    if summary.get("published_meanwhile"):
        newer, now = summary["published_meanwhile"], served or version
        return (f"**Not promoted: {newer}, published meanwhile by another process, is served now.**"
                if now == newer else
                f"**Not promoted: {newer} was published meanwhile by another process; {now} is served now.**")
    if summary["promoted"]:
        outcome = f"Promoted: {version} {'was published' if changed else 'is now served'}"
    else:
        outcome = f"Not promoted: {version} {'stayed served' if changed else 'stays served'}"
    return f"**{outcome}{f'; {served} is served now' if changed else ''}.**"


_CASES_NAMED = 6  # case ids named in a verdict's sentence; the model's config lists them all
_UNLIKE_NAMED = 10  # images named in a bulk receipt's check; the JSON receipt lists them all


def _copies_text(repeats: int, disputed: Sequence[str]) -> list[str]:
    """The cases a retrain left out as copies of one film: later copies under the first's label, and
    every copy of a film submitted under different labels (named: a clinician corrects or withdraws)."""
    lines = [f"{repeats} submitted case{'s were' if repeats > 1 else ' was'} left out as "
             f"{'later copies' if repeats > 1 else 'a later copy'} of an earlier case of the same label (at "
             "another size or encoding; the earlier case was learnt)"] if repeats else []
    if disputed:
        lines.append(f"**{len(disputed)} submitted cases were left out as copies of a film submitted under "
                     f"different labels** ({_named_cases(disputed)}): a clinician should correct the wrong "
                     "labels (withdrawing one copy would leave every copy of the film out)")
    return lines


def _named_cases(case_ids: Sequence[str]) -> str:
    """The first few of ``case_ids`` (shortened), and how many more the model's config lists."""
    named = ", ".join(f"`{_short_id(case)}`" for case in case_ids[:_CASES_NAMED])
    more = len(case_ids) - _CASES_NAMED
    return named + (f" and {more} more (the model's config lists them all)" if more > 0 else "")


def verdict_text(summary: Mapping[str, Any], served: str | None = None) -> str:
    """A retrain's outcome in plain words (the gate's exact reason stays in the details); ``served``:
    the version served now, for a retrain shown after later changes (None: just ended)."""
    current, candidate = summary["current_metrics"], summary["candidate_metrics"]
    n = candidate.get("n", "the")
    scores = (f"AUC (malignant vs rest) {_fmt(candidate.get('auc_malignant'), 2)} for the candidate, "
              f"{_fmt(current.get('auc_malignant'), 2)} for {summary['current_version']}, on the same "
              f"{n} held-out films")
    seen = summary.get("val_learnt_by_init", 0)
    caveat = "" if seen == 0 else (
        " The candidate's calibration and operating threshold were fitted on validation films that the "
        "weights it started from may have already learnt from (they record no list), so they may be "
        "optimistic."
        if seen is None else
        f" The candidate's calibration and operating threshold were fitted on {seen} validation films "
        "that the weights it started from had already learnt from, so they are optimistic (the held-out "
        "comparison is not affected).")
    left_out, conflicts = summary.get("cases_left_out") or 0, summary.get("cases_label_conflicts") or 0
    if left_out:  # conflicts are some of them
        caveat += (f" {left_out} submitted case{'s were' if left_out > 1 else ' was'} left out of "
                   f"training: {'their images are films' if left_out > 1 else 'its image is a film'} "
                   "of the base data, or a copy of one at another size or encoding or mirrored (held-out and "
                   "validation films are never trained on, a training film not twice).")
        if conflicts:
            ids = summary.get("cases_in_label_conflict") or []  # none from retrains before they were named
            named = f" ({_named_cases(ids)})" if ids else ""
            caveat += (f" **{conflicts} of them {'carry' if conflicts > 1 else 'carries'} another label "
                       f"than the base data's**{named}: the base label was kept; a clinician should look at "
                       f"{'them' if conflicts > 1 else 'it'}.")
    corrected, withdrawn = summary.get("cases_corrected") or 0, summary.get("cases_withdrawn") or 0
    amended = [*([f"{corrected} of the submitted cases it read carr{'ies' if corrected == 1 else 'y'} a "
                  "corrected label"] if corrected else []),
               *([f"{withdrawn} withdrawn case{'s were' if withdrawn > 1 else ' was'} left out"]
                 if withdrawn else []),
               *([f"{copies} submitted case{'s were' if copies > 1 else ' was'} left out as "
                  f"{'copies' if copies > 1 else 'a copy'} of a withdrawn case's image (at another size or "
                  "encoding)"] if (copies := summary.get("cases_withdrawn_copies") or 0) else []),
               *_copies_text(summary.get("cases_repeated") or 0, summary.get("cases_disputed") or [])]
    if amended:
        caveat += f" {'; '.join(amended)}."
    if summary.get("film_size_warning"):
        caveat += f" {summary['film_size_warning']}"
    elsewhere = _recorded_elsewhere(summary)  # said in every outcome that quotes the served figure
    noise = _paired_text(summary.get("paired_difference"), summary["current_version"]) + elsewhere
    if summary["promoted"]:
        return (f"{_headline(summary, served)} It did no worse than "
                f"{summary['current_version']} ({scores}).{noise}{caveat}")
    kept = f" The candidate is kept under *Rejected candidates* for inspection.{caveat}"
    if summary.get("published_meanwhile"):
        return (f"{_headline(summary, served)} The candidate did no worse than {summary['current_version']} "
                f"({scores}), but {summary['published_meanwhile']} came from a retrain from a shell or a Job "
                f"while this one trained, and the candidate was never compared with it. Retrain again to "
                f"compare a candidate with {summary['published_meanwhile']}.{elsewhere}{kept}")
    malignant, needed = malignant_films(candidate), summary.get("gate_min_malignant") or 0
    if malignant is not None and malignant < needed and not gives_every_film_one_score(candidate):
        return (f"{_headline(summary, served)} The {n} held-out films hold "
                f"{malignant} malignant film{'' if malignant == 1 else 's'}, fewer than the {needed} the "
                f"gate needs to tell two models apart, so it promotes none ({scores}).{elsewhere} Base data "
                f"with more held-out malignant films are needed (MAMMO_BASE_DATA).{kept}")
    if gives_every_film_one_score(candidate):  # the gate's first rule: its figures mean nothing
        return (f"{_headline(summary, served)} The candidate gives every one of "
                f"the {n} held-out films the same malignancy score: it learnt nothing usable (a whole-film "
                f"stage can collapse on films too small for its patches), whatever its figures ({scores}). "
                f"One score for every film has no meaningful AUC, so no interval on the difference is given."
                f"{elsewhere}{kept}")
    if summary.get("reason", "").startswith(FLAG_REFUSED):  # it ranked as well, but flags fewer cancers
        films, line = malignant_films(candidate), summary.get("gate_best_sensitivity")
        earlier = (f", and {line['version']}, an earlier version of the served line, flagged "
                   f"{round(line['value'] * films)}" if line and line["version"] != summary["current_version"]
                   else "")
        telling = ("" if flag_kept(summary["current_metrics"]) is not None else
                   " (its flag flags every film, so it tells nothing: the line's is kept)")
        return (f"{_headline(summary, served)} The candidate ranks the held-out films about as well "
                f"({scores}), but at its review cut-off it flags {flagged_malignant(candidate)} of the "
                f"{films} malignant held-out films, where {summary['current_version']} flags "
                f"{flagged_malignant(summary['current_metrics'])}{telling}{earlier}: served, its flag would "
                f"miss more cancers.{noise}{kept}")
    if summary.get("reason", "").startswith(LINE_REFUSED):  # within the tolerance of the served one only
        best = summary["gate_best"]
        metric = METRIC_NAMES.get(best["metric"], best["metric"])
        return (f"{_headline(summary, served)} The candidate came within the gate's tolerance of "
                f"{summary['current_version']}, but not of {best['version']}, an earlier version of the "
                f"served line, on the same films ({metric}: {_fmt(candidate.get(best['metric']), 2)} for the "
                f"candidate, {_fmt(best['value'], 2)} for {best['version']}; {scores}). Each retrain may "
                f"score up to the tolerance below the one before, never more than that below the best one, "
                f"so that versions cannot drift down step by step.{noise}{kept}")
    if summary.get("reason", "").startswith(ALARMS_REFUSED):  # a sensitivity gate's flag-everything model
        others = n - (malignant_films(candidate) or 0) if isinstance(n, int) else None
        specificity = recorded_value(candidate, "specificity")
        flagged = (f" ({round((1 - specificity) * others)} of the {others} held-out ones)"
                   if others and specificity is not None else "")
        if flags_every_film(candidate):  # refused whatever the served flag: it tells nothing
            return (f"{_headline(summary, served)} The gate compares sensitivity, and the candidate's flag "
                    f"flags every film that is not malignant{flagged}: its sensitivity of 1 tells nothing, "
                    f"and served, it would raise an alarm for every film ({scores}).{noise}{kept}")
        return (f"{_headline(summary, served)} The gate compares sensitivity, and the candidate's flag "
                f"flags more of the films that are not malignant{flagged} than the served line's flag did: "
                f"served, it would raise more false alarms ({scores}).{noise}{kept}")
    return (f"{_headline(summary, served)} The candidate did worse than the "
            f"served version ({scores}).{noise}{kept}")


def _recorded_elsewhere(summary: Mapping[str, Any]) -> str:
    """Why the served version's figure here is not the one it recorded, when it was scored on other
    data then (another copy of the films, such as mini-MIAS at another resolution); "" otherwise."""
    recorded, here = summary.get("current_recorded"), summary.get("scored_on")
    if not recorded or not here or not recorded.get("sources") or recorded["sources"] == here:
        return ""
    now = summary["current_metrics"].get("auc_malignant")
    if now is not None and round(now, 2) == round(recorded["auc_malignant"], 2):
        return ""
    return (f" {summary['current_version']} recorded AUC {auc_and_ci(recorded)} on the held-out films of "
            f"{_data_names(recorded['sources'])} when it was made; here the gate scores it on those of "
            f"{_data_names(here)}: other films, or other copies of them (another resolution), so the "
            "figure differs.")


def _copy_names(sources: Sequence[str]) -> list[str]:
    """Which data ``sources`` are, by name: the same folder at another path, or a Hub dataset at another
    commit, is the same copy of the films."""
    return sorted(data_name(str(source).rstrip("/")).split("@")[0] for source in sources)


def _data_names(sources: Sequence[str]) -> str:
    """Data folders or repos as people read them (:func:`~mammo.config.data_name`: "mias1024", not the
    server's path), in italics."""
    return ", ".join(f"*{data_name(str(source).rstrip('/')) or source}*" for source in sources)


def _paired_text(paired: Mapping[str, Any] | None, served: str) -> str:
    """How far the gate's comparison is from noise: the paired difference and its patient-resampled CI."""
    if not paired:
        return " These films give no interval on the difference in malignant-vs-rest AUC: read it as noise."
    if paired["positives"] < FEWEST_FOR_AN_INTERVAL:  # a patient bootstrap would be degenerate
        return (f" These films hold too few malignant films ({paired['positives']}) to put an interval on "
                "the difference in malignant-vs-rest AUC: read it as noise.")
    low, high = paired["ci95"]
    reading = ("the interval holds 0, so these films cannot tell the two apart" if low <= 0 <= high else
               f"the candidate is {'better' if low > 0 else 'worse'} beyond these films' noise")
    return (f" Malignant-vs-rest AUC paired on the same films, resampling patients: candidate − {served} "
            f"{paired['difference']:+.2f} (95% CI {low:+.2f} to {high:+.2f}; {paired['positives']} of the "
            f"films are malignant, from {paired['groups']} patients): {reading}.")


_RETRAINING = "**Retraining: "  # how this page's own retrain's status line starts
_RUNNING_ELSEWHERE = "**A retrain is running**"
_LAST_RETRAIN = "**The last retrain**"
_NOT_DONE = "**The retrain did not run or did not finish**"
_NOT_SERVED = "**The retrain published a version it could not serve**"


def retrain_status(fraction: float, message: str, elapsed_s: float, epoch: Any = None,
                   since_epoch_s: float = 0.0) -> str:
    """What a running retrain is doing: the step, the last epoch's losses and AUC, elapsed and the time
    left at the last epoch's pace, counting down from when it ended (``since_epoch_s`` ago); an epoch
    also scores films between its batches, and from the second on it first looks for hard negatives,
    so batches alone misjudge it. Whole-film epochs keep a pace of their own: slower than patch epochs
    at the served size, faster on small films (a walk at 96 px saw 7 s against 43 s)."""
    patches = epoch is not None and epoch.stage == PATCH_STAGE
    slower = (" (the whole-film epochs that follow keep a pace of their own: at the served size, slower)"
              if patches else "")
    left = ("; time left: known once the first epoch ends" if epoch is None else
            f", about {duration(max(0.0, epoch.seconds * (epoch.epochs - epoch.epoch) - since_epoch_s))} "
            f"left at the last epoch's pace{slower}, then the check on the held-out films")
    lines = [f"{_RETRAINING}{100 * fraction:.0f}%**, {message}.", f"Elapsed {duration(elapsed_s)}{left}."]
    if epoch is not None:
        val_loss = "" if epoch.val_loss is None else f", validation loss {epoch.val_loss:.3f}"
        stage = f" ({epoch.stage})" if epoch.stage else ""
        lines.append(f"Epoch {epoch.epoch}/{epoch.epochs}{stage}: training loss {epoch.train_loss:.3f}"
                     f"{val_loss}, validation AUC {_fmt(epoch.val_auc)}.")
    return "  \n".join(lines)


def running_elsewhere_text(started: str, progress: tuple[float, str] | None = None) -> str:
    """The Retrain tab's status line while a retrain this page did not start runs (another visitor's,
    an API caller's, the automatic one), started at ``started``; ``progress``: its latest step."""
    now = "" if progress is None else f" Now: {100 * progress[0]:.0f}%, {progress[1]}."
    return (f"{_RUNNING_ELSEWHERE}, started at {started} from another page, an API call or the automatic "
            f"retrain.{now} Only one runs at a time: Retrain is refused until it ends. Open this tab again "
            "for news; a version it promotes shows in the Models tab.")


def running_retrain_text(started: str | None, shown: str | None, last: Mapping[str, Any] | None,
                         fetching: bool = False, progress: tuple[float, str] | None = None,
                         results_below: bool = False) -> str | None:
    """The Retrain tab's status line as the tab is opened: a retrain this page did not start is running,
    or else how the last retrain ended. None: leave the line as it is (this page's own retrain streams
    its progress there, then says how it ended).

    Args:
        started: when the running retrain started (None: none runs).
        shown: the status line on the page now.
        last: the audit event of the last retrain (None: none is recorded).
        fetching: the audit log is still being fetched from the Hub (a new disk).
        progress: the running retrain's latest step (fraction done, what it does).
        results_below: the last retrain's verdict and results are shown under the line.
    """
    shown = shown or ""
    if shown.startswith(_RETRAINING):
        return None
    if started:
        return running_elsewhere_text(started, progress)
    if not shown or shown.startswith((_RUNNING_ELSEWHERE, _LAST_RETRAIN)):
        return last_retrain_text(last, fetching, results_below)
    return None


def last_retrain_text(event: Mapping[str, Any] | None, fetching: bool = False,
                      results_below: bool = False) -> str:
    """How the last retrain ended, from its audit event (None: no retrain is recorded; a start: it has
    no recorded end); ``fetching``: the audit log is still being fetched from the Hub;
    ``results_below``: its verdict is shown under the line, which then points to it rather than say
    the gate's reason once more (a walk found a refusal said three times after a reload)."""
    if not event:
        if fetching:
            return (f"{_LAST_RETRAIN}: none recorded yet; this app is still fetching its audit log from "
                    "the Hub (open this tab again in a moment).")
        return f"{_LAST_RETRAIN}: none recorded in this app's audit log."
    details, when, user = event.get("details") or {}, human_time(event.get("at")), event.get("user")
    if event.get("action") == "retrain started":
        return (f"{_LAST_RETRAIN} started {when}, by {user}, and has **no recorded end**: the app stopped "
                "during it (or it runs in another process). No version came of it.")
    version, served_before = details.get("version"), details.get("served_before")
    if results_below and event.get("action") in ("promotion", "rejection"):
        outcome = (f"promoted: **{version}** replaced {served_before}" if event["action"] == "promotion" else
                   f"not promoted: **{served_before}** stayed served")
        return (f"{_LAST_RETRAIN} ended {when}, started by {user}: {outcome}. Its verdict and results are "
                "below.")
    outcome = {
        "promotion": f"{gate_reason_text(str(details.get('reason')))}. **{version}** replaced "
                     f"{served_before}.",
        "promotion, not yet served": f"**{version}** was published, not served yet: {details.get('error')}",
        "rejection": f"{gate_reason_text(str(details.get('reason')))}. **{served_before}** stayed served.",
    }.get(event.get("action"), f"**it failed**: {details.get('error')}")
    return f"{_LAST_RETRAIN} ended {when}, started by {user}: {outcome}"


def retrain_failed_text(shown: str | None, reason: str | None = None, *, published: bool = False) -> str:
    """The status line once this page's Retrain was refused or failed, saying why (``reason``: the
    refusal's message; without it, the message shown top right; ``published``: the candidate passed the
    gate and was published, but could not be served): a line saying that another retrain runs, or why
    this one did not, stays."""
    if reason is None and (shown or "").startswith((_RUNNING_ELSEWHERE, _NOT_DONE, _NOT_SERVED)):
        return shown
    if published:
        return f"{_NOT_SERVED}: {reason}"
    why = (reason or "see the message (top right).").rstrip()
    ended = "" if why.endswith((".", "!", "?")) else "."  # a refusal's message may lack its full stop
    return f"{_NOT_DONE}: {why}{ended} Results below, if any, are those of the last retrain that ended."


def duration(seconds: float) -> str:
    """Seconds as '3 min 05 s' (or '42 s')."""
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


REJECTED_COLUMNS = ["candidate id", "rejected", "by", "AUC malignant (candidate)", "AUC malignant (served)",
                    "served then"]


def rejected_rows(rejected: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    """One row per rejected candidate, newest first."""
    rows = []
    for r in reversed(rejected):
        report = r.get("report") or {}
        by = report.get("user") or ("anonymous" if report else "—")  # as the audit log says it
        rows.append([r["id"], human_time(r.get("rejected_at")), by,
                     _fmt((report.get("candidate_metrics") or {}).get("auc_malignant")),
                     _fmt((report.get("current_metrics") or {}).get("auc_malignant")),
                     report.get("current_version") or "—"])
    return rows


def _said(value: Any) -> str:
    """A stored metadata value as the receipt says it: yes/no for a boolean, else the value as text."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return literal(str(value))


def receipt_text(receipt: Mapping[str, Any], fields: Mapping[str, Any]) -> str:
    """A submission's receipt in words: what was stored, under which id, and the totals.

    ``fields`` is the metadata table (name -> field with a ``short_label``).
    """
    given = {k: v for k, v in (receipt.get("metadata") or {}).items() if v is not None}
    shown = [f"{fields[k].short_label}: {_said(v)}" for k, v in given.items() if k in fields]
    blank = [fields[k].short_label for k in fields if k not in given]
    lines = [f"**Case {_where(receipt)}** as **{receipt['label']}**, id `{receipt['case_id']}`, "
             f"{human_time(receipt.get('submitted_at'))}. The dataset now holds {receipt['total_cases']} "
             f"submitted case{'' if receipt['total_cases'] == 1 else 's'}.",
             "Metadata stored: " + (stored := "; ".join(shown) if shown else "none")
             + ("" if stored.endswith((".", "!", "?")) else ".")]  # notes may end a sentence
    if blank:
        lines.append("Left empty (stored as empty, not guessed): " + ", ".join(blank) + ".")
    return "  \n".join([*lines, *_receipt_notes(receipt)])


def pending_stored_text(receipt: Mapping[str, Any]) -> str:
    """An offered image stored as a case, in words, with the submission's notes (a base film is left
    out of training; a warning)."""
    return "  \n".join([f"Stored as case `{receipt['case_id']}` ({receipt['label']}); it left the pool.",
                        *_receipt_notes(receipt)])


def _receipt_notes(receipt: Mapping[str, Any]) -> list[str]:
    """A receipt's notes: what a retrain does with a base film's case, and a warning (queued, ...)."""
    return [*([f"⚠️ Note: {receipt['base_film']}."] if receipt.get("base_film") else []),
            *([f"⚠️ Check: {receipt['label_doubt']}."] if receipt.get("label_doubt") else []),
            *([f"⚠️ Check: this image does not look like a whole mammogram ({receipt['not_like_a_film']}); "
               "it was stored as given, and a retrain learns from it: withdraw it if it is not a film."]
              if receipt.get("not_like_a_film") else []),
            *([f"Note: {receipt['warning']}"] if receipt.get("warning") else [])]


def case_choices(cases: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """A case picker's choices: each case by its id's start, its label now and its day."""
    return [(f"{c['case_id'][:8]} ({c['label']}, {c['submitted_at'][:10]})", c["case_id"]) for c in cases]


def withdrawal_question(case_id: str, label: str, reason: str) -> str:
    """The question before a withdrawal, which cannot be undone on the page: which case, and why."""
    return (f"Withdraw case `{case_id}` (labelled {label}) because: {reason}? From then on it is left out "
            "of the counts, the case lists and every retrain, for good: **a withdrawal cannot be undone "
            "here.**")


def correction_text(receipt: Mapping[str, Any]) -> str:
    """A label correction's receipt in words: the case, its label now and before, the totals."""
    learns = "" if receipt.get("base_film") else " The next retrain learns the corrected label."
    return _amendment_text(receipt, (
        f"**Label corrected** ({_where(receipt)}): case `{receipt['case_id']}` is now **{receipt['label']}** "
        f"(was {receipt['was']}), {human_time(receipt.get('corrected_at'))}.{learns}"))


def withdrawal_text(receipt: Mapping[str, Any]) -> str:
    """A withdrawal's receipt in words: the case, why, what changes and what does not, the totals."""
    return _amendment_text(receipt, (
        f"**Case withdrawn** ({_where(receipt, 'recorded')}): case `{receipt['case_id']}` "
        f"(was {receipt['was']}), {human_time(receipt.get('corrected_at'))}, "
        f"because: {receipt['withdrawn']}. From now on it is left out of the counts, the case lists and "
        "every retrain, its image is not shown, and the "
        "same image is not taken again. Published versions keep what they learnt from it. Its image "
        "stays in the dataset's files until a maintainer erases it: to have it erased, give the "
        "maintainer of this app the case id (README: *Withdrawing a case*)."))


def _amendment_text(receipt: Mapping[str, Any], said: str) -> str:
    """An amendment's words, the totals after it and the receipt's notes, one per line."""
    counts = ", ".join(f"{label} {n}" for label, n in receipt["counts"].items())
    return "  \n".join([said, f"Submitted cases per label now: {counts}.", *_receipt_notes(receipt)])


def _where(receipt: Mapping[str, Any], done: str = "stored") -> str:
    """Where a receipt's cases (or its amendment, ``done``: "recorded") are: in the store, or queued
    for the Hub."""
    return (done if receipt.get("status") == "stored" else
            "queued for upload to the dataset (kept on this server until the Hub answers)")


def unreadable_text(why: str) -> str:
    """Why the file in the Predict box cannot be read, beside it for as long as it is there."""
    return f"**This file cannot be read.** {literal(why)}"


def refused_text(why: str) -> str:
    """Why a submission was refused, kept where its receipt would be once the toast has gone (said
    once: a refusal that starts "Nothing was stored: " read "Not stored. Nothing was stored: ")."""
    return f"⚠️ **Not stored.** {literal(why.removeprefix(NOTHING_STORED))}"


def bulk_receipt_text(receipt: Mapping[str, Any]) -> str:
    """A bulk upload's receipt in words: how many cases were stored (or queued), the totals, and the
    files skipped because their images were stored before; or (``refused``) why nothing was."""
    if "refused" in receipt:  # kept on the page after the toast has gone
        return f"⚠️ {literal(receipt['refused'])}"
    stored, total = len(receipt["case_ids"]), receipt["total_cases"]
    when = human_time(receipt.get("submitted_at"))
    lines = [f"**{stored} case{'' if stored == 1 else 's'} {_where(receipt)}**, {when}. "
             f"The dataset now holds {total} submitted case{'' if total == 1 else 's'}."]
    skipped = receipt.get("skipped") or []
    for withdrawn, why in ((False, "stored before"), (True, "withdrawn before, or a copy of a withdrawn "
                                                          "case's image: not taken again")):
        if names := [literal(s["name"]) for s in skipped if bool(s.get("withdrawn")) == withdrawn]:
            lines.append(f"Skipped, {why}: {', '.join(names)}.")
    if conflicts := label_conflict_text(skipped):
        lines.append(f"⚠️ {literal(conflicts)}")
    if documents := receipt.get("not_images"):
        lines.append(f"Left out, documents beside the images: {', '.join(map(literal, documents))}.")
    if receipt.get("base_films"):
        lines.append(f"⚠️ Note: {receipt['base_films']}.")
    if unlike := receipt.get("not_like_a_film"):
        one = len(unlike) == 1
        named = "; ".join(f"`{u['case_id']}` ({literal(u['name'])}: {u['why']})"
                          for u in unlike[:_UNLIKE_NAMED])
        more = f"; and {len(unlike) - _UNLIKE_NAMED} more" if len(unlike) > _UNLIKE_NAMED else ""
        lines.append(f"⚠️ Check: {'this image does' if one else f'{len(unlike)} of these images do'} not look "
                     f"like a whole mammogram: {named}{more}. {'It was' if one else 'They were'} stored as "
                     f"given, and a retrain learns from {'it' if one else 'them'}: withdraw any that is not "
                     "a film (*Correct a stored case's label, or withdraw the case*, below, by its case id).")
    if receipt.get("warning"):
        lines.append(f"Note: {receipt['warning']}")
    return "  \n".join(lines)


def literal(text: str) -> str:
    """``text`` as Markdown that shows it as typed: HTML and Markdown syntax escaped, as are ``:``
    (the page's GFM turns a bare URL into a link) and ``$`` (its KaTeX renders ``$$...$$``); each
    line break is kept and each line's leading blanks dropped (an indented line would be code). A
    visitor's notes are stored verbatim and must not render as a link, an image or a heading."""
    escaped = re.sub(r"([\\`*_{}\[\]()#+\-.!|~>:$=])", r"\\\1", html.escape(text, quote=False))
    return "  \n".join(line.strip() for line in escaped.splitlines())


def known_image_notes(details: Mapping[str, Any]) -> str:
    """Why this image's score is not a fresh one, in words ("" when it is): an image unlike a film,
    a film the model learnt from, or a case already stored."""
    notes = []
    if details.get("not_like_a_film"):
        notes.append("this image does not look like a whole-breast mammogram "
                     f"({details['not_like_a_film']}); the model learnt from such films only, so its scores "
                     "here mean little")
    if details.get("in_training_data"):
        notes.append(f"this image is one of the films model {details['model_version']} was trained "
                     "(or validated) on, so its score says nothing about how the model does on new films")
    if details.get("stored_case"):
        label = f", confirmed **{details['stored_label']}**" if details.get("stored_label") else ""
        notes.append(f"this image is already in the case store (case `{details['stored_case']}`{label})")
    return "; ".join(notes)


def known_image_text(details: Mapping[str, Any]) -> str:
    """:func:`known_image_notes` as a warning for the page."""
    notes = known_image_notes(details)
    return f"⚠️ **Note:** {notes}." if notes else ""


def metadata_from_fields(**fields: Any) -> dict[str, Any]:
    """Optional metadata fields from the form, empty ones left out."""
    return {k: v for k, v in fields.items() if v not in (None, "", [])}


RELIABILITY_COLUMNS = ["mean predicted P(malignant)", "observed malignant share", "model", "films in the bin"]
PERFECT_CALIBRATION = "perfect calibration"


def reliability_frame(named_metrics: Mapping[str, Mapping[str, Any]]) -> pd.DataFrame:
    """Reliability points (mean predicted vs observed malignant share per bin, with the bin's number of
    films: a bin of one or two jumps between 0 and 1) of several models, then the diagonal of perfect
    calibration (last, so each model has the colour it has in the ROC plot beside it), long format for
    a line plot."""
    rows = []
    for name, metrics in named_metrics.items():
        ece = metrics.get("ece_malignant")
        label = f"{name} (ECE {_fmt(ece, 3)})"
        rows += [[b["mean_predicted"], b["observed"], label, b.get("n")]
                 for b in metrics.get("reliability") or []]
    rows += [[0.0, 0.0, PERFECT_CALIBRATION, None], [1.0, 1.0, PERFECT_CALIBRATION, None]]
    frame = pd.DataFrame(rows, columns=RELIABILITY_COLUMNS)
    return frame.round({"mean predicted P(malignant)": 3, "observed malignant share": 3})


def has_calibration(reliability: pd.DataFrame) -> bool:
    """Whether a :func:`reliability_frame` has a model's points, not only the diagonal."""
    return bool((reliability["model"] != PERFECT_CALIBRATION).any())


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


def auto_retrain_text(state: Mapping[str, int] | None) -> str:
    """What automatic retraining does here, for the Retrain tab ('' when it is off)."""
    if not state:
        return ""
    return (f"Automatic retraining is on: a gated retrain starts after every {state['every']} new cases "
            f"({state['new_cases']} since the last retrain).")


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


_PATCH_SIZE = 96  # the patch recipe's default patch side, for a config that does not record it
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
