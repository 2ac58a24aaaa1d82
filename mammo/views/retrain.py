"""What the Retrain tab shows: the gate's reason, the verdict, the served-vs-candidate tables and plot frames,
the status line of a running retrain, rejected candidates."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..choices import PATCH_STAGE
from ..config import GATE_METRICS
from ..metrics import (
    FEWEST_FOR_AN_INTERVAL,
    flagged_malignant,
    malignant_films,
    recorded_value,
)
from ..store.gate import (
    ALARMS_REFUSED,
    FLAG_REFUSED,
    LINE_REFUSED,
    flag_kept,
    flags_every_film,
    gives_every_film_one_score,
)
from ..timestamps import human_time
from ._common import (
    METRIC_NAMES,
    ONE_SCORE_MEANS,
    _by_patient,
    _ci,
    _data_names,
    _fmt,
    _short_id,
    auc_and_ci,
    duration,
    no_interval,
)

__all__ = ["BASE_FILM_CASES", "gate_reason_text", "gate_text", "counts_frame", "roc_frame", "LOSS_CURVES",
           "AUC_CURVE", "curves_frame", "loss_plot_title", "confusion_frame", "comparison_frame",
           "verdict_text", "retrain_status", "running_elsewhere_text", "running_retrain_text",
           "streams_its_own_retrain",
           "last_retrain_text", "retrain_failed_text", "REJECTED_COLUMNS", "rejected_rows",
           "RELIABILITY_COLUMNS", "PERFECT_CALIBRATION", "reliability_frame", "has_calibration",
           "auto_retrain_text"]


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


BASE_FILM_CASES = "cases of base films (left out)"  # data_summary's source for them


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
        if key == "ece_malignant_by_chance95":  # two decimals: the third moves with the draws
            return _ci(value, 2)
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
    # "did worse" above "these films cannot tell the two apart" read as a contradiction (a walk): the gate
    # compares the scores on these films, with its tolerance, whatever their noise
    return (f"{_headline(summary, served)} On these held-out films the candidate scored lower than the "
            f"served version, by more than the gate allows ({scores}).{noise}{kept}")


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


def _paired_text(paired: Mapping[str, Any] | None, served: str) -> str:
    """How far the gate's comparison is from noise: the paired difference and its patient-resampled CI."""
    if not paired:
        return " These films give no interval on the difference in malignant-vs-rest AUC: read it as noise."
    # a patient bootstrap would be degenerate on too few malignant films, or too few women with them (a
    # metrics review: it counted films only; recorded before 5 Dec 2026, a comparison has no patient count)
    women = paired.get("positive_groups", paired["positives"])
    if min(paired["positives"], women) < FEWEST_FOR_AN_INTERVAL:
        whose = "" if women == paired["positives"] else f", from {women} patients"
        return (f" These films hold too few malignant films ({paired['positives']}{whose}) to put an "
                "interval on the difference in malignant-vs-rest AUC: read it as noise.")
    low, high = paired["ci95"]
    reading = ("the interval holds 0, so these films cannot tell the two apart" if low <= 0 <= high else
               f"the candidate is {'better' if low > 0 else 'worse'} beyond these films' noise")
    return (f" Malignant-vs-rest AUC paired on the same films, resampling patients: candidate − {served} "
            f"{paired['difference']:+.2f} (95% CI {low:+.2f} to {high:+.2f}; {paired['positives']} of the "
            f"films are malignant, from {paired['groups']} patients): {reading}.")


_RETRAINING = "**Retraining: "  # how this page's own retrain's status line starts


_RUNNING_ELSEWHERE = "**A retrain is running**"


_LAST_RETRAIN = "**The last retrain**"


_NOT_DONE = "**The retrain did not run or did not finish**"  # where the page cannot tell which


_REFUSED = "**The retrain was refused before it trained**"


_STOPPED = "**The retrain stopped before it finished**"


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


def running_elsewhere_text(started: str, progress: tuple[float, str] | None = None,
                           followed: bool = False) -> str:
    """The Retrain tab's status line while a retrain this page did not start runs (another visitor's,
    an API caller's, the automatic one), started at ``started``; ``progress``: its latest step;
    ``followed``: the page reads it again every few seconds (else, once, when the tab is opened)."""
    now = "" if progress is None else f" Now: {100 * progress[0]:.0f}%, {progress[1]}."
    news = "This line follows it" if followed else "Open this tab again for news"
    return (f"{_RUNNING_ELSEWHERE}, started at {started} from another page, an API call or the automatic "
            f"retrain.{now} Only one runs at a time: Retrain is refused until it ends. {news}; a version it "
            "promotes shows in the Models tab.")


def streams_its_own_retrain(shown: str | None) -> bool:
    """Whether the Retrain tab's status line ``shown`` is the page's own retrain's, which streams its
    progress (from its first line on, "starting"; a refusal's line follows it)."""
    return (shown or "").startswith(_RETRAINING)


def running_retrain_text(started: str | None, shown: str | None, last: Mapping[str, Any] | None,
                         fetching: bool = False, progress: tuple[float, str] | None = None,
                         results_below: bool = False, followed: bool = False,
                         results_read: bool = True) -> str | None:
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
        followed: the page reads this line again every few seconds while a retrain it did not start
            runs.
        results_read: the results under the line are read with it (the tab opened); else (the line
            read again on its own) a retrain that has just ended is said in full, and where its results
            show.
    """
    shown = shown or ""
    if shown.startswith(_RETRAINING):
        return None
    if started:
        return running_elsewhere_text(started, progress, followed)
    if not results_read and shown.startswith(_RUNNING_ELSEWHERE):  # just ended: the results below are older
        return f"{last_retrain_text(last, fetching)} Open this tab again for its results below."
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


def retrain_failed_text(shown: str | None, reason: str | None = None, *, published: bool = False,
                        trained: bool | None = None) -> str:
    """The status line once this page's Retrain was refused or failed, saying why (``reason``: the
    refusal's message; without it, the message shown top right; ``published``: the candidate passed the
    gate and was published, but could not be served; ``trained``: whether training had begun, None
    where not known): a line saying that another retrain runs, or why this one did not, stays."""
    if reason is None and (shown or "").startswith((_RUNNING_ELSEWHERE, _NOT_DONE, _REFUSED, _STOPPED,
                                                    _NOT_SERVED)):
        return shown
    if published:
        return f"{_NOT_SERVED}: {reason}"
    why = (reason or "see the message (top right).").rstrip()
    ended = "" if why.endswith((".", "!", "?")) else "."  # a refusal's message may lack its full stop
    # said as it happened: a walk read "did not run or did not finish" of a retrain refused at once
    head = _NOT_DONE if trained is None else _STOPPED if trained else _REFUSED
    return f"{head}: {why}{ended} Results below, if any, are those of the last retrain that ended."


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


def auto_retrain_text(state: Mapping[str, int] | None) -> str:
    """What automatic retraining does here, for the Retrain tab ('' when it is off)."""
    if not state:
        return ""
    return (f"Automatic retraining is on: a gated retrain starts after every {state['every']} new cases "
            f"({state['new_cases']} since the last retrain).")
