"""Promotion gate: a retrained candidate becomes a version only if it scores well enough.

Both metric dicts (``evaluate --json`` dicts, docs/architecture.md) must be computed on the SAME fixed
evaluation set (by default the held-out split of the base data), the current version re-scored
on it if need be: comparing numbers from different sets is meaningless. Callers ensure this;
the gate only compares.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from ..config import GATE_METRIC, GATE_MIN_MALIGNANT, GATE_MORE_MISSED_SHARE, GATE_TOLERANCE
from ..metrics import flagged_malignant, malignant_films, recorded_value

__all__ = ["DEFAULT_METRIC", "DEFAULT_TOLERANCE", "FLAG_REFUSED", "LINE_REFUSED", "ALARMS_REFUSED",
           "promotion_decision", "gives_every_film_one_score", "flags_every_film", "flag_check", "flag_kept",
           "false_alarm_check", "more_missed_allowed", "line_best"]

DEFAULT_METRIC = GATE_METRIC
DEFAULT_TOLERANCE = GATE_TOLERANCE
_FLOAT_SLACK = 1e-9  # so that e.g. 0.80 vs 0.81 - 0.01 is "at the boundary", not below it
# how a reason starts when the review flag refused the candidate
FLAG_REFUSED = "not promoted: its review flag misses more malignant films"
# how a reason starts when the candidate is within the tolerance of the current version but not of
# an earlier version of the served line that scored higher on the same films
LINE_REFUSED = "not promoted: below the best version of the served line"
# how a reason starts when a sensitivity gate's candidate buys its sensitivity with false alarms
ALARMS_REFUSED = "not promoted: its review flag raises more false alarms"


def gives_every_film_one_score(metrics: dict) -> bool:
    """Whether every film got exactly the same malignancy score, by the ROC's thresholds (the first
    is a sentinel above the highest score, the last the lowest score); False when no ROC is
    recorded. Exact: a barely trained model whose scores differ in the seventh decimal still ranks."""
    thresholds = ((metrics.get("roc") or {}).get("thresholds") or [])[1:]
    return bool(thresholds) and max(thresholds) == min(thresholds)


def more_missed_allowed(films: int) -> int:
    """How many more of ``films`` malignant films a candidate's review flag may miss than the current
    version's: :data:`~mammo.config.GATE_MORE_MISSED_SHARE` of them, at least one."""
    return max(1, math.floor(GATE_MORE_MISSED_SHARE * films))


def flags_every_film(metrics: Mapping) -> bool:
    """Whether a version's review flag flags every film that is not malignant (specificity 0, as v2's
    cut-off does): a flag that tells nothing."""
    return recorded_value(metrics, "specificity") == 0


def flag_kept(metrics: Mapping) -> float | None:
    """The sensitivity of a version's review flag as the gate keeps it: None where it records none, or
    where :func:`flags_every_film`."""
    return None if flags_every_film(metrics) else recorded_value(metrics, "sensitivity")


def flag_check(candidate_metrics: dict, current_metrics: dict,
               best: Mapping | None = None) -> tuple[bool, str]:
    """Whether the candidate's review flag misses at most :func:`more_missed_allowed` more malignant
    films than the current version's, or than ``best``'s (:func:`line_best` of :func:`flag_kept`: the
    most an earlier version of the line flagged) when that flagged more, and that in words ("" when
    either flag is not recorded). A flag that flags every film tells nothing: with no other to keep,
    any candidate passes."""
    films = malignant_films(candidate_metrics)
    candidate, current = flagged_malignant(candidate_metrics), flagged_malignant(current_metrics)
    if films is None or candidate is None:
        return True, ""
    served = None if flag_kept(current_metrics) is None else current
    most, whose = (None, "") if served is None else (served, "the current version")
    line = recorded_value(best, "value") if best else None
    if line is not None and (most is None or round(line * films) > most):
        most, whose = round(line * films), f"{best['version']}, the most of the served line,"
    if most is None:
        return True, "" if current is None else (
            f"at its review cut-off the candidate flags {candidate} of the {films} malignant films; the "
            "current version's flag flags every film, so there is no flag to compare")
    allowed = more_missed_allowed(films)
    # never below what the line kept, less the allowance; but a flag that catches more than the served
    # one's is never refused (the served one may sit below the line: a tolerance lowered since)
    fine = candidate >= most - allowed or (served is not None and candidate > served)
    counts = (f"at its review cut-off the candidate flags {candidate} of the {films} malignant films, "
              f"{whose} {most} (at most {allowed} fewer allowed)")
    return fine, counts if fine else f"{FLAG_REFUSED}: {counts}"


def false_alarm_check(candidate_metrics: dict, current_metrics: dict,
                      best: Mapping | None = None) -> tuple[bool, str]:
    """Whether the candidate's review flag flags at most :func:`more_missed_allowed` more of the
    non-malignant films than the current version's, or than ``best`` (:func:`line_best` of the
    specificity: the fewest an earlier version of the line flagged) when that flagged fewer, and that in
    words ("" when not recorded). Checked when the gate compares sensitivity: a flag that flags every
    film has sensitivity 1."""
    films, malignant = candidate_metrics.get("n"), malignant_films(candidate_metrics)
    rates = recorded_value(candidate_metrics, "specificity"), recorded_value(current_metrics, "specificity")
    if not isinstance(films, int) or malignant is None or None in rates or films == malignant:
        return True, ""
    others = films - malignant
    candidate, current = (round((1 - rate) * others) for rate in rates)
    fewest, whose = current, "the current version"
    line = recorded_value(best, "value") if best else None
    if line is not None and round((1 - line) * others) < current:
        fewest, whose = round((1 - line) * others), f"{best['version']}, the fewest of the served line,"
    allowed = more_missed_allowed(others)
    counts = (f"at its review cut-off the candidate flags {candidate} of the {others} films that are not "
              f"malignant, {whose} {fewest} (at most {allowed} more allowed)")
    fine = candidate <= fewest + allowed or candidate < current  # fewer than the served one's: never refused
    return fine, counts if fine else f"{ALARMS_REFUSED}: {counts}"


def line_best(recorded: Mapping | None, metric: str, films: str, version: str,
              value: float | None) -> dict | None:
    """The best ``metric`` a version of the served line scored on the held-out films ``films`` (their
    :func:`~mammo.data.films_key`): ``version``'s ``value`` now, or the best its own promotion was
    compared with (``recorded``, its report's ``gate_best``) when that was on the same metric and
    films, whichever is higher. ``{"metric", "films", "version", "value"}``; None when neither is known.
    """
    known = [] if value is None else [{"metric": metric, "films": films, "version": version, "value": value}]
    if (isinstance(recorded, Mapping) and recorded.get("metric") == metric and recorded.get("films") == films
            and isinstance(recorded.get("version"), str) and recorded_value(recorded, "value") is not None):
        known.append({key: recorded[key] for key in ("metric", "films", "version", "value")})
    return max(known, key=lambda best: best["value"], default=None)


def promotion_decision(
    candidate_metrics: dict,
    current_metrics: dict | None,
    metric: str = DEFAULT_METRIC,
    tolerance: float = DEFAULT_TOLERANCE,
    *,
    split: str | None = None,
    min_malignant: int = GATE_MIN_MALIGNANT,
    best: Mapping | None = None,
    best_specificity: Mapping | None = None,
    best_flag: Mapping | None = None,
) -> tuple[bool, str]:
    """Whether to promote the candidate, and a reason stating both scores, the metric and split.

    Promote iff there is no current version, or candidate[metric] >= current[metric] -
    tolerance (boundary included) and the candidate's review flag misses at most
    :func:`more_missed_allowed` more malignant films than the current version's (both flags at each
    model's own cut-off, on the same films; not checked where either records none, nor where the
    current one flags every film: :func:`flag_check`). A candidate without a score for ``metric``,
    or whose ROC says it gave every film the same malignancy score, is never promoted. A current
    version without one (undefined on this set) cannot block a candidate that has one. Nor is a
    candidate promoted over a current version when the set holds fewer than ``min_malignant``
    malignant films (by the candidate's ``per_class`` support): there the two cannot be told apart.
    ``split`` names the evaluation set in the reason (default: the metric dicts' ``split`` entry, else
    "the fixed evaluation set").

    ``best`` (:func:`line_best`) is the best score an earlier version of the served line reached on
    the same films: the candidate must also reach it minus ``tolerance``, so that retrains, each
    within the tolerance of the one before, cannot drift down step by step. Gating on sensitivity,
    the candidate's flag must also raise at most :func:`more_missed_allowed` more false alarms than
    the current version's, or ``best_specificity``'s (the line's fewest) where fewer
    (:func:`false_alarm_check`): flagging every film gives sensitivity 1, so a candidate whose flag
    flags every film that is not malignant is never promoted over a current version. ``best_flag`` is
    the line's most malignant films flagged (:func:`flag_kept`), which the flag check keeps to likewise.
    """
    if tolerance < 0 or math.isnan(tolerance):
        raise ValueError(f"tolerance must be >= 0, got {tolerance}")
    where = split or candidate_metrics.get("split") or "the fixed evaluation set"
    where = f"{where} (n={candidate_metrics['n']})" if "n" in candidate_metrics else where
    if gives_every_film_one_score(candidate_metrics):
        return False, (
            "not promoted: the candidate gives every film the same malignancy score (a model that learnt "
            "nothing usable, e.g. a whole-film stage collapsed on films too small for its patches), "
            f"whatever its figures; evaluated on {where}"
        )
    candidate = recorded_value(candidate_metrics, metric)
    if candidate is None:
        return False, (
            f"not promoted: the candidate has no {metric} on {where} "
            f"(got {candidate_metrics.get(metric)!r}), so it cannot be compared"
        )
    if current_metrics is None:
        return True, f"promoted: no current version; candidate {metric} {candidate:.4f} on {where}"
    malignant = malignant_films(candidate_metrics)
    if malignant is not None and malignant < min_malignant:
        return False, (
            f"not promoted: {where} holds {malignant} malignant film{'' if malignant == 1 else 's'}, fewer "
            f"than the {min_malignant} the gate needs to compare two models (candidate {metric} "
            f"{candidate:.4f}); held-out patients with more malignant films are needed"
        )
    # whatever the current version's flag: one without a cut-off, or one that flags all but a film,
    # would let it through the count of false alarms (a review found both)
    if metric == "sensitivity" and flags_every_film(candidate_metrics):
        return False, (
            f"{ALARMS_REFUSED}: at its review cut-off the candidate flags every film that is not malignant "
            f"(specificity 0), so its sensitivity {candidate:.4f} tells nothing; evaluated on {where}")
    current = recorded_value(current_metrics, metric)
    if current is None:
        return True, (
            f"promoted: candidate {metric} {candidate:.4f} on {where}; the current version has "
            f"no {metric} there (got {current_metrics.get(metric)!r})"
        )
    bar = current - tolerance
    ranks = candidate >= bar - _FLOAT_SLACK
    flags, flag_words = flag_check(candidate_metrics, current_metrics, best_flag) if ranks else (True, "")
    relation = ">=" if ranks else "<"
    compared = (f"candidate {metric} {candidate:.4f} {relation} current {current:.4f} - tolerance "
                f"{tolerance:g} = {bar:.4f}")
    high = recorded_value(best, "value") if best else None
    # a candidate that beats the served version is never refused by the line (the served one may sit
    # below the line's bar: a tolerance lowered since, or promoted over a version without the metric)
    if (ranks and high is not None and high > current and candidate < high - tolerance - _FLOAT_SLACK
            and candidate <= current):
        return False, (f"{LINE_REFUSED}: {compared}, but < {best['version']}'s {high:.4f} - tolerance "
                       f"{tolerance:g} = {high - tolerance:.4f}, the best an earlier version of the served "
                       f"line scored on these films (each retrain within the tolerance of the last would "
                       f"otherwise drift down) on {where}")
    if ranks and flags and metric == "sensitivity":
        flags, alarm_words = false_alarm_check(candidate_metrics, current_metrics, best_specificity)
        flag_words = alarm_words if not flags else "; ".join(filter(None, (flag_words, alarm_words)))
    if not flags:
        return False, f"{flag_words}, though {compared} on {where}"
    verdict = "promoted" if ranks else "not promoted"
    return ranks, f"{verdict}: {compared}{'; ' + flag_words if flag_words else ''} on {where}"
