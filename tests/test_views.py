"""mammo.views: the tables, plot frames and texts the app shows, built from real results."""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from helpers import PACKAGED, SERVED

from mammo import views
from mammo.config import PACKAGE_WEIGHTS, data_name
from mammo.store.cases import label_conflict_text
from mammo.store.registry import LocalModelRegistry, packaged_versions
from mammo.timestamps import human_time

V1 = PACKAGE_WEIGHTS / "v1"


@pytest.fixture(scope="module")
def v1_mammo() -> dict:
    """The ``mammo`` block of the packaged v1: real metrics, ROC, confusion matrix, training history."""
    if not (V1 / "config.json").is_file():
        pytest.skip(f"the packaged model {V1} is missing")
    return json.loads((V1 / "config.json").read_text())["mammo"]


def shown_numbers(text: str) -> tuple[float, float, bool]:
    """(score, cut-off, flagged) exactly as a visitor reads them in the score text."""
    score = float(re.search(r"Malignancy score: ([\d.]+) %", text).group(1))
    verdict, threshold = re.search(r"\*\*(Flagged for review|Not flagged)\*\* at this model's review "
                                   r"cut-off of ([\d.]+) %", text).groups()
    return score, float(threshold), verdict == "Flagged for review"


def assert_score_text_consistent(details: dict) -> None:
    text = views.score_text(details)
    score, threshold, flagged = shown_numbers(text)
    assert flagged == details["above_threshold"]
    # what the visitor reads must agree with the verdict (equal when rounding makes them meet)
    assert score >= threshold if flagged else score <= threshold, text
    assert f"model {details['model_version']}" in text and "not a diagnosis" in text
    # one scale: the score and its cut-off are both shown as percentages with one decimal
    shown = [f"{details['malignancy_score']:.1f} %", f"{details['threshold']:.1f} %"]
    assert re.findall(r"[\d.]+ %", text) == shown
    # never a bare "above"/"below" that reads against a "normal" label
    assert " above " not in text and " below " not in text


def test_score_text_agrees_with_the_threshold_for_small_scores() -> None:
    # v1's operating threshold is P(malignant) = 0.0028, 0.28 on the 0-100 scale
    details = {"model_version": "v1", "malignancy_score": 0.3, "threshold": 0.2830769633874297,
               "above_threshold": True}
    assert_score_text_consistent(details)
    assert "flags most films" in views.score_text(details)


@pytest.mark.parametrize("version", PACKAGED)
def test_score_text_on_real_predictions(mias: Path, version: str) -> None:
    """The packaged models on real mini-MIAS images (v1: on both sides of its cut-off)."""
    from mammo.predict import Predictor

    if not (PACKAGE_WEIGHTS / version / "config.json").is_file():
        pytest.skip(f"the packaged model {version} is missing")
    predictor = Predictor(PACKAGE_WEIGHTS / version)
    films = mias if version == "v1" else mias.parent / "mias1024"  # each at the resolution it reads
    images = sorted((films / "normal").glob("*.png"))[:8] + sorted((films / "malignant").glob("*.png"))[:6]
    results = [r.details() for r in predictor.predict_many([str(p) for p in images], method=None)]
    if version == "v1":  # v2's cut-off (90% sensitivity out of fold) flags nearly every film
        assert {d["above_threshold"] for d in results} == {True, False}
    for details in results:
        assert_score_text_consistent(details)
    # how the cut-off was set, and what the flag did on the held-out patients, from the model's record
    cut_off, text = results[0]["cut_off"], views.score_text(results[0])
    assert cut_off["set_on"] == ("validation" if version == "v1" else "out of fold")
    assert (cut_off["held_out_flagged"], cut_off["held_out_malignant"]) == {"v1": (4, 6), "v2": (6, 6),
                                                                           "v3": (5, 6)}[version]
    assert f"On held-out patients it flagged {cut_off['held_out_flagged']} of 6 malignant films." in text
    assert ("patients it had not trained on (cross-validation)" in text) is (version != "v1")


def test_a_retrained_models_cut_off_set_on_films_it_had_learnt_is_called_optimistic() -> None:
    """A walk's retrain from v3 set its cut-off on validation films v3 had trained on; Predict still said
    it was "the score at which it caught 90% of the malignant films of patients it had not trained on",
    while its flag caught 1 of the 6 malignant held-out films."""
    from mammo.predict import cut_off_record

    mammo = {"threshold": 0.148, "threshold_rule": "highest calibrated P(malignant) cut-off reaching 90% "
             "sensitivity on validation", "data": {"val_learnt_by_init": 37},
             "split": {"name": "holdout"},
             "metrics": {"sensitivity": 1 / 6, "per_class": {"malignant": {"support": 6}}}}
    cut_off = cut_off_record(mammo)
    assert cut_off == {"set_on": "validation it had learnt", "held_out_flagged": 1, "held_out_malignant": 6}
    text = views.score_text({"model_version": "v4", "malignancy_score": 8.4, "threshold": 14.8,
                             "above_threshold": False, "cut_off": cut_off})
    assert "had not trained on" not in text
    assert "whom the model it was retrained from had learnt: optimistic" in text
    assert "On held-out patients it flagged 1 of 6 malignant films." in text
    # no validation films it had learnt; no holdout; no cut-off at all
    mammo["data"], mammo["split"] = {"val_learnt_by_init": 0}, {"name": "validation"}
    assert cut_off_record(mammo) == {"set_on": "validation", "held_out_flagged": None,
                                     "held_out_malignant": None}
    assert "held-out" not in views.cut_off_text(cut_off_record(mammo))
    assert cut_off_record({**mammo, "threshold": None}) is None
    mammo["data"] = {"val_learnt_by_init": None}  # the weights it started from record no list
    assert cut_off_record(mammo)["set_on"] == "validation it may have learnt"
    said = views.cut_off_text(cut_off_record(mammo))
    assert "may have learnt (it records no list): perhaps optimistic" in said
    nan = {**mammo, "split": {"name": "holdout"}, "metrics": {"sensitivity": float("nan"),
                                                               "per_class": {"malignant": {"support": 6}}}}
    assert cut_off_record(nan)["held_out_flagged"] is None  # no crash as the model loads


def test_the_verdict_says_a_candidate_was_refused_for_its_flag_not_that_it_did_worse() -> None:
    """The walk's retrain ranked as well as v3 but flagged 1 of the 6 malignant held-out films; under
    the gate's flag rule the page said "The candidate did worse", its own AUCs saying otherwise."""
    from mammo.store.gate import promotion_decision

    def flagging(auc: float, caught: int) -> dict:
        return {"auc_malignant": auc, "n": 38, "sensitivity": caught / 6, "specificity": 0.7,
                "per_class": {"malignant": {"support": 6}}}

    candidate, current = flagging(0.67, 1), flagging(0.65, 5)
    promoted, reason = promotion_decision(candidate, current, split="holdout")
    summary = {"promoted": promoted, "reason": reason, "version": "v3", "current_version": "v3",
               "candidate_metrics": candidate, "current_metrics": current, "rejected_id": "r1"}
    text = views.verdict_text(summary)
    assert "did worse" not in text and "ranks the held-out films about as well" in text
    assert "at its review cut-off it flags 1 of the 6 malignant held-out films, where v3 flags 5" in text
    assert views.gate_reason_text(reason).startswith("not promoted: its review flag misses more malignant")
    # held to an earlier version of the line that flagged more: named too
    line = {"metric": "sensitivity", "films": "f", "version": "v2", "value": 1.0}
    promoted, reason = promotion_decision(flagging(0.67, 4), current, split="holdout", best_flag=line)
    text = views.verdict_text({**summary, "promoted": promoted, "reason": reason,
                               "candidate_metrics": flagging(0.67, 4), "gate_best_sensitivity": line})
    assert not promoted and ("it flags 4 of the 6 malignant held-out films, where v3 flags 5, and v2, an "
                             "earlier version of the served line, flagged 6") in text
    # a served flag that flags every film tells nothing, and the verdict says so beside its count
    everything = {**flagging(0.65, 6), "specificity": 0.0}
    promoted, reason = promotion_decision(flagging(0.67, 4), everything, split="holdout", best_flag=line)
    text = views.verdict_text({**summary, "promoted": promoted, "reason": reason,
                               "current_metrics": everything, "candidate_metrics": flagging(0.67, 4),
                               "gate_best_sensitivity": line})
    assert not promoted and ("where v3 flags 6 (its flag flags every film, so it tells nothing: the line's "
                             "is kept), and v2, an earlier version of the served line, flagged 6") in text


def test_the_verdict_says_a_sensitivity_gate_refused_a_candidate_for_its_false_alarms() -> None:
    from mammo.store.gate import promotion_decision

    def flagging(caught: int, specificity: float) -> dict:
        return {"auc_malignant": 0.7, "n": 38, "sensitivity": caught / 6, "specificity": specificity,
                "per_class": {"malignant": {"support": 6}}}

    candidate, current = flagging(6, 2 / 32), flagging(5, 0.75)
    promoted, reason = promotion_decision(candidate, current, "sensitivity", split="holdout")
    summary = {"promoted": promoted, "reason": reason, "version": "v3", "current_version": "v3",
               "candidate_metrics": candidate, "current_metrics": current, "rejected_id": "r1"}
    text = views.verdict_text(summary)
    assert not promoted and "did worse" not in text
    assert ("the candidate's flag flags more of the films that are not malignant (30 of the 32 held-out "
            "ones) than the served line's flag did: served, it would raise more false alarms") in text
    # a flag of every film, whatever the served version's (here none: no cut-off), is named as such
    unflagged = {"auc_malignant": 0.7, "n": 38, "per_class": {"malignant": {"support": 6}}}
    promoted, reason = promotion_decision(flagging(6, 0.0), unflagged, "sensitivity", split="holdout")
    text = views.verdict_text({**summary, "promoted": promoted, "reason": reason,
                               "candidate_metrics": flagging(6, 0.0), "current_metrics": unflagged})
    assert not promoted and "than the served line's flag did" not in text
    assert ("the candidate's flag flags every film that is not malignant (32 of the 32 held-out ones): its "
            "sensitivity of 1 tells nothing, and served, it would raise an alarm for every film") in text


def test_score_text_without_malignant_class_or_threshold() -> None:
    assert "no *malignant* class" in views.score_text({"model_version": "vX", "malignancy_score": None})
    text = views.score_text({"model_version": "v7", "malignancy_score": 42.0, "threshold": None})
    assert "Malignancy score: 42.0 %" in text and "no review cut-off" in text
    assert "v7" in text


def test_history_row() -> None:
    details = {"model_version": "v2", "label": "benign", "malignancy_score": 12.5371,
               "above_threshold": False}
    assert views.history_row("a.png", details) == ["a.png", "benign", "12.5", "no", "v2", "—"]
    assert views.history_row("a.png", {**details, "malignancy_score": 9.0})[2] == "9.0"  # not "9"
    assert len(views.history_row("a.png", details)) == len(views.HISTORY_COLUMNS)
    no_threshold = {**details, "above_threshold": None}
    assert views.history_row("b.dcm", no_threshold)[3] == "—"
    known = {**details, "in_training_data": True, "stored_case": "ab12", "stored_label": "malignant",
             "uncertainty": {"spread": 28.3, "high": True}}
    assert views.history_row("c.png", known)[-1] == ("a film it learnt from; stored case (malignant); "
                                                     "high uncertainty")
    pattern = {**details, "not_like_a_film": "no background around the breast"}
    assert views.history_row("d.png", pattern)[-1] == "not like a mammogram"


def test_rounded_rounds_every_float_and_keeps_the_rest() -> None:
    details = {"probabilities": {"normal": 0.123456789, "malignant": 0.87654321},
               "malignancy_score": 87.654321, "calibrated": True, "n": 3, "ci": [0.41234567, 0.8512345],
               "label": "malignant"}
    assert views.rounded(details) == {"probabilities": {"normal": 0.1235, "malignant": 0.8765},
                                      "malignancy_score": 87.6543, "calibrated": True, "n": 3,
                                      "ci": [0.4123, 0.8512], "label": "malignant"}


def test_human_time() -> None:
    assert human_time("2026-11-30T08:48:42.003777+00:00") == "30 Nov 2026, 08:48 UTC"
    assert human_time("2026-01-02T23:05:00Z") == "2 Jan 2026, 23:05 UTC"
    assert human_time(None) == "—" and human_time("not a time") == "not a time"


def test_known_image_text() -> None:
    unknown = {"model_version": "v2", "in_training_data": False, "stored_case": None}
    assert views.known_image_text(unknown) == ""
    text = views.known_image_text({"model_version": "v2", "in_training_data": True, "stored_case": "ab12",
                                   "stored_label": "malignant"})
    assert "v2 was trained" in text and "case `ab12`, confirmed **malignant**" in text


def test_receipt_text_repeats_what_was_stored() -> None:
    from mammo.store.cases import METADATA_FIELDS

    receipt = {"case_id": "c0ffee", "label": "benign", "submitted_at": "2026-11-30T09:00:00Z",
               "total_cases": 3, "status": "stored",
               "metadata": {"view": "CC", "laterality": None, "density": None, "birads": 0,
                            "biopsy_confirmed": True, "age": None, "notes": None}}
    text = views.receipt_text(receipt, METADATA_FIELDS)
    assert "**Case stored** as **benign**, id `c0ffee`, 30 Nov 2026, 09:00 UTC" in text
    assert "The dataset now holds 3 submitted cases." in text
    first = views.receipt_text({**receipt, "total_cases": 1}, METADATA_FIELDS)
    assert "The dataset now holds 1 submitted case." in first
    assert "View: CC; BI-RADS assessment: 0; Biopsy-confirmed: yes." in text  # BI-RADS 0 is a real category
    assert "(stored as empty, not guessed): Laterality, Breast density, Age in years, Notes." in text
    queued = views.receipt_text({**receipt, "status": "queued", "warning": "Hub down"}, METADATA_FIELDS)
    assert "queued for upload" in queued and "Hub down" in queued
    known = views.receipt_text({**receipt, "base_film": "one of the films v3 learnt from"}, METADATA_FIELDS)
    assert "⚠️ Note: one of the films v3 learnt from." in known and "⚠️" not in text
    # notes that end a sentence get no second full stop ("Left CC film.." in a walk's receipt)
    ended = views.receipt_text({**receipt, "metadata": {**receipt["metadata"], "notes": "Left CC film."}},
                               METADATA_FIELDS)
    assert ended.split("\n")[1].endswith("Notes: Left CC film\\.  ")


def test_receipt_text_shows_notes_as_typed_not_as_html_or_markdown() -> None:
    """Rendered as CommonMark (markdown-it, installed with Gradio); the page itself renders with
    marked (GFM: bare URLs become links) and KaTeX, hence the escaped ':' and '$' checked below."""
    from markdown_it import MarkdownIt

    from mammo.store.cases import METADATA_FIELDS

    first = "<img src=x onerror=alert(1)> [click me](http://example.com) <h1>BIG</h1> # *not bold* a\\b &amp;"
    notes = f"{first}\n\n    indented, not code\nunderlined\n===\n$$x^2$$ see http://example.com/a_b"
    receipt = {"case_id": "c0ffee", "label": "benign", "submitted_at": "2026-11-30T09:00:00Z",
               "total_cases": 3, "status": "stored", "metadata": {"notes": notes}}
    text = views.receipt_text(receipt, METADATA_FIELDS)
    rendered = MarkdownIt("commonmark").render(text)
    for tag in ("<img", "<a ", "<h1", "<em>", "<pre>", "<code>indented"):
        assert tag not in rendered
    shown = rendered.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").replace("<br />", "")
    for line in notes.splitlines():
        assert line.strip() in shown  # every character as typed, line by line
    assert r"http\://example\.com" in text and r"\$\$x^2\$\$" in text  # no autolink, no maths on the page


def test_verdict_text_in_plain_words() -> None:
    summary = {"promoted": False, "version": "v2", "current_version": "v2",
               "current_metrics": {"auc_malignant": 0.71, "n": 38},
               "candidate_metrics": {"auc_malignant": 0.6, "n": 38}}
    text = views.verdict_text(summary)
    assert text.startswith("**Not promoted: v2 stays served.**")
    assert "0.60 for the candidate, 0.71 for v2" in text
    assert "the candidate scored lower than the served version, by more than the gate allows" in text
    assert "_" not in text  # no metric keys, no ids
    promoted = views.verdict_text({**summary, "promoted": True, "version": "v3"})
    assert promoted.startswith("**Promoted: v3 is now served.**")
    # shown again after later changes: what was served then, and what is served now
    assert views.verdict_text({**summary, "promoted": True, "version": "v3"}, "v3") == promoted
    assert views.verdict_text({**summary, "promoted": True, "version": "v3"}, "v4").startswith(
        "**Promoted: v3 was published; v4 is served now.** It did no worse than v2")
    later = views.verdict_text(summary, "v4")
    assert later.startswith("**Not promoted: v2 stayed served; v4 is served now.**")
    assert "optimistic" not in text + promoted  # started from weights that never saw the validation films
    unknown = views.verdict_text({**summary, "val_learnt_by_init": None})
    assert "may have already learnt from (they record no list), so they may be optimistic" in unknown
    # rejected because it gave every film one score (the gate's first rule), not for its AUC
    collapsed = {**summary["candidate_metrics"], "auc_malignant": 0.5,
                 "roc": {"thresholds": [1.5, 0.31, 0.31], "fpr": [0, 1, 1], "tpr": [0, 1, 1]}}
    text = views.verdict_text({**summary, "candidate_metrics": collapsed})
    assert "gives every one of the 38 held-out films the same malignancy score" in text
    assert "did worse" not in text and "Rejected candidates" in text
    assert "no meaningful AUC" in text and "resampling patients" not in text  # no interval on noise
    # rejected because the held-out films hold too few malignant ones to compare, not for its AUC
    one = {"auc_malignant": 1.0, "n": 8, "per_class": {"malignant": {"support": 1}}}
    text = views.verdict_text({**summary, "candidate_metrics": one, "gate_min_malignant": 5})
    assert ("The 8 held-out films hold 1 malignant film, fewer than the 5 the gate needs to tell two "
            "models apart, so it promotes none") in text
    assert "did worse" not in text and "Rejected candidates" in text


def test_verdict_says_why_the_served_versions_figure_is_not_the_one_it_recorded() -> None:
    recorded = {"auc_malignant": 0.6667, "auc_malignant_ci95": [0.34, 0.94], "n": 38,
                "sources": ["../shared/data/mias1024"]}
    summary = {"promoted": False, "version": "v3", "current_version": "v3",
               "current_metrics": {"auc_malignant": 0.651, "n": 38},
               "candidate_metrics": {"auc_malignant": 0.6, "n": 38},
               "current_recorded": recorded, "scored_on": ["/data/mias"]}
    said = ("v3 recorded AUC 0.67 (95% CI 0.34–0.94) on the held-out films of *mias1024* when "
            "it was made; here the gate scores it on those of *mias*")  # not the server's paths
    assert said in views.verdict_text(summary)
    collapsed = {"auc_malignant": 0.5, "n": 38, "roc": {"thresholds": [1.5, 0.31, 0.31]}}  # every outcome
    for outcome in ({**summary, "promoted": True}, {**summary, "published_meanwhile": "v4"},
                    {**summary, "candidate_metrics": collapsed}):
        assert said in views.verdict_text(outcome), outcome
    same_data = {**summary, "scored_on": recorded["sources"]}
    same_figure = {**summary, "current_metrics": {"auc_malignant": 0.668, "n": 38}}
    for quiet in (same_data, same_figure, {**summary, "current_recorded": None}):
        assert "when it was made" not in views.verdict_text(quiet)


@pytest.mark.parametrize("ci95, reading", [
    ([-0.31, 0.12], "the interval holds 0, so these films cannot tell the two apart"),
    ([0.02, 0.30], "the candidate is better beyond these films' noise"),
    ([-0.40, -0.01], "the candidate is worse beyond these films' noise"),
])
def test_verdict_says_whether_the_held_out_films_can_tell_the_models_apart(ci95: list[float],
                                                                           reading: str) -> None:
    summary = {"promoted": False, "version": "v3", "current_version": "v3",
               "current_metrics": {"auc_malignant": 0.71, "n": 38},
               "candidate_metrics": {"auc_malignant": 0.6, "n": 38},
               "paired_difference": {"difference": -0.11, "ci95": ci95, "positives": 6, "groups": 19}}
    text = views.verdict_text(summary)
    assert (f"candidate − v3 -0.11 (95% CI {ci95[0]:+.2f} to {ci95[1]:+.2f}; 6 of the films are malignant, "
            f"from 19 patients): {reading}.") in text
    without = views.verdict_text({**summary, "paired_difference": None})
    assert "These films give no interval on the difference in malignant-vs-rest AUC" in without
    two = {**summary["paired_difference"], "ci95": [-0.5, -0.5], "positives": 2}  # degenerate resamples
    assert "too few malignant films (2) to put" in views.verdict_text({**summary, "paired_difference": two})
    # six malignant films from three women: resampling women, three draws (a metrics review)
    three = {**summary["paired_difference"], "positive_groups": 3}
    assert "too few malignant films (6, from 3 patients) to put" in views.verdict_text(
        {**summary, "paired_difference": three})


def test_the_retrain_tab_says_when_a_retrain_it_did_not_start_runs_and_when_it_ends() -> None:
    own = views.retrain_status(0.4, "epoch 3: batch 1/9", 120.0)
    rejected = {"at": "2026-12-02T10:42:07.123+00:00", "action": "rejection", "user": "carol",
                "details": {"version": "v3", "served_before": "v3", "reason": "not promoted: candidate "
                            "auc_malignant 0.6000 < current 0.7000 - tolerance 0.01 = 0.6900 on the holdout"}}
    assert views.running_retrain_text("10:02:03 UTC", own, None) is None  # this page's progress stays
    running = views.running_retrain_text("10:02:03 UTC", "", None)
    assert running.startswith("**A retrain is running**, started at 10:02:03 UTC")
    assert views.running_retrain_text("10:02:03 UTC", running, rejected) == running
    # ended: how it ended, from its audit event
    ended = views.running_retrain_text(None, running, rejected)
    assert ended == ("**The last retrain** ended 2 Dec 2026, 10:42 UTC, started by carol: not promoted: "
                     "candidate AUC (malignant vs rest) 0.6000 < current 0.7000 - tolerance 0.01 = 0.6900 on "
                     "the holdout. **v3** stayed served.")  # the metric in words, not its key
    assert views.running_retrain_text(None, "**Finished** in 3 min 05 s.", rejected) is None  # its own stays
    # a page opened before any retrain, then after one
    assert views.running_retrain_text(None, None, None) == "**The last retrain**: none recorded in this " \
                                                         "app's audit log."
    fetching = views.running_retrain_text(None, None, None, fetching=True)  # a new disk, the Hub's log coming
    assert "still fetching its audit log from the Hub" in fetching
    assert views.running_retrain_text(None, fetching, rejected, fetching=False) == ended  # then it is in
    promoted = {**rejected, "action": "promotion",
                "details": {"version": "v4", "served_before": "v3", "reason": "promoted: …"}}
    again = views.running_retrain_text(None, ended, promoted)
    assert again.endswith("promoted: …. **v4** replaced v3.")
    # with its verdict shown below (a page opened after it ended), the line points there and does not
    # say the gate's reason a second time
    below = views.running_retrain_text(None, None, rejected, results_below=True)
    assert below == ("**The last retrain** ended 2 Dec 2026, 10:42 UTC, started by carol: not promoted: "
                     "**v3** stayed served. Its verdict and results are below.")
    assert views.last_retrain_text(promoted, results_below=True).endswith(
        "carol: promoted: **v4** replaced v3. Its verdict and results are below.")
    failed = {**rejected, "action": "retrain failed", "details": {"error": "RetrainError: no base data"}}
    assert views.last_retrain_text(failed).endswith("carol: **it failed**: RetrainError: no base data")
    unserved = {**rejected, "action": "promotion, not yet served",
                "details": {"version": "v4", "error": "PublishedNotServed: the Hub did not answer"}}
    assert "**v4** was published, not served yet: PublishedNotServed" in views.last_retrain_text(unserved)
    started = {**rejected, "action": "retrain started", "details": {"served": "v3"}}  # the app stopped
    assert views.last_retrain_text(started) == (
        "**The last retrain** started 2 Dec 2026, 10:42 UTC, by carol, and has **no recorded end**: the app "
        "stopped during it (or it runs in another process). No version came of it.")
    # this page's Retrain refused: the line naming the running retrain stays; any other failure is said
    assert views.retrain_failed_text(running) == running == views.running_elsewhere_text("10:02:03 UTC")
    # and what it does now, as far as it has got (other pages had no news of it)
    news = views.running_retrain_text("10:02:03 UTC", "", None, progress=(0.45, "epoch 3 of 11 (patches): "
                                                                                "batch 12/41"))
    assert "10:02:03 UTC from another page, an API call or the automatic retrain. Now: 45%, epoch 3 of 11 " \
           "(patches): batch 12/41." in news
    # an open tab reads another's running retrain again every few seconds (a walk's stayed at 13% for the
    # whole run), then says how it ended and where its results show
    assert views.streams_its_own_retrain(own) and not views.streams_its_own_retrain(running)
    assert not views.streams_its_own_retrain(None)
    followed = views.running_retrain_text("10:02:03 UTC", "", None, followed=True)
    assert "Retrain is refused until it ends. This line follows it; a version it promotes" in followed
    assert "Open this tab again" not in followed
    just_ended = views.running_retrain_text(None, followed, rejected, followed=True, results_read=False)
    assert just_ended == f"{ended} Open this tab again for its results below."
    assert views.running_retrain_text(None, followed, rejected, followed=True) == ended  # the tab opened
    failed = views.retrain_failed_text(own)
    assert failed.startswith("**The retrain did not run or did not finish**: see the message (top right).")
    assert failed.endswith("Results below, if any, are those of the last retrain that ended.")
    # the refusal's own words, when the page has them, stay on the line (a toast goes away)
    said = views.retrain_failed_text(own, "The number of epochs must be from 1 to 100.")
    assert said.startswith("**The retrain did not run or did not finish**: The number of epochs must be from "
                           "1 to 100. Results below")
    assert views.retrain_failed_text(said) == said
    # as it happened, where the page knows (a walk read "did not run or did not finish" of a refusal)
    refused = views.retrain_failed_text(own, "4 of the 4 held-out films are films v3 learnt from.",
                                        trained=False)
    assert refused.startswith("**The retrain was refused before it trained**: 4 of the 4")
    stopped = views.retrain_failed_text(own, "The disk is full.", trained=True)
    assert stopped.startswith("**The retrain stopped before it finished**: The disk is full.")
    assert views.retrain_failed_text(refused) == refused and views.retrain_failed_text(stopped) == stopped
    # a refusal without its full stop gets one (a walk read "... got 64 Results below")
    bare = views.retrain_failed_text(own, "its image size must be at least 96 px, got 64")
    assert "got 64. Results below" in bare
    # a candidate published but not served: not "did not run"
    published = views.retrain_failed_text(own, "v5 passed the gate and is published, but it could not be "
                                               "loaded back to serve", published=True)
    assert published.startswith("**The retrain published a version it could not serve**: v5 passed")
    assert "did not run" not in published and views.retrain_failed_text(published) == published


def test_retrain_status_shows_epoch_losses_auc_and_time_left() -> None:
    from mammo.train import EpochLog

    epoch = EpochLog(epoch=2, epochs=5, train_loss=0.61234, val_loss=0.7, val_auc=0.655, val_accuracy=0.6,
                     seconds=30.0, best=True)
    text = views.retrain_status(0.4, "epoch 3 of 5 (patches): batch 1/9", 120.0, epoch)
    assert "**Retraining: 40%**, epoch 3 of 5 (patches): batch 1/9." in text
    # the time left at the last epoch's pace (30 s, 3 epochs to go), not from the share of batches done:
    # an epoch also scores films and looks for hard negatives between its batches (a walk saw "5 min
    # left" turn into "11 min" while its first epoch's films were scored)
    assert "Elapsed 2 min 00 s, about 1 min 30 s left at the last epoch's pace" in text
    later = views.retrain_status(0.45, "epoch 3 of 5 (patches): batch 5/9", 140.0, epoch, since_epoch_s=20.0)
    assert "about 1 min 10 s left" in later  # it counts down between epoch ends
    assert "Epoch 2/5: training loss 0.612, validation loss 0.700, validation AUC 0.655." in text
    assert "whole-film epochs" not in text  # the film recipe's one stage
    # after a patch epoch the pace is a lower bound (a walk saw "3 min 39 s left" become "5 min 43 s")
    patches = views.retrain_status(0.3, "epoch 2 of 5", 75.0, dataclasses.replace(epoch, stage="patches"))
    assert ("left at the last epoch's pace (the whole-film epochs that follow keep a pace of their own: at "
            "the served size, slower), then the check") in patches
    film = EpochLog(epoch=4, epochs=5, train_loss=0.9, val_loss=None, val_auc=0.7, val_accuracy=None,
                    seconds=60.0, best=True, stage="whole films")
    assert "Epoch 4/5 (whole films): training loss 0.900, validation AUC 0.700." in views.retrain_status(
        0.8, "epoch 5 of 5 (whole films): batch 1/9", 300.0, film)
    first = views.retrain_status(0.05, "epoch 1 of 5 (patches): batch 9/9", 20.0)  # no epoch ended yet
    assert "time left: known once the first epoch ends" in first and "about" not in first


def test_rejected_rows_newest_first() -> None:
    rejected = [{"id": "a", "rejected_at": "2026-11-30T09:00:00+00:00",
                 "report": {"user": None, "candidate_metrics": {"auc_malignant": 0.5},
                            "current_metrics": {"auc_malignant": 0.7}, "current_version": "v2"}},
                {"id": "b", "rejected_at": None, "report": None}]
    assert views.rejected_rows(rejected) == [
        ["b", "—", "—", "—", "—", "—"], ["a", "30 Nov 2026, 09:00 UTC", "anonymous", "0.500", "0.700", "v2"]]


@pytest.fixture
def registry(tmp_path: Path, v1_mammo: dict) -> LocalModelRegistry:
    """A local registry: the packaged v1 and v2 published from it."""
    registry = LocalModelRegistry(tmp_path / "home")
    assert registry.seed(V1) == "v1"
    assert registry.publish(registry.load("v1"), {"promoted": True}) == "v2"
    return registry


@pytest.mark.parametrize(("count", "label"), [
    (2, "Versions (2, newest first)"), (4, "Versions (4, newest first)"),
    (5, "Versions (5, newest first: scroll the table for the older ones)")])
def test_the_versions_title_counts_them_and_says_when_the_table_scrolls(count: int, label: str) -> None:
    assert views.versions_label(count) == label


def test_a_card_on_the_page_has_its_headings_one_level_down() -> None:
    """The page's title stays its only first-level heading; a code block's lines are left alone."""
    from huggingface_hub import ModelCard

    card = "# mammo — v3\n\ntext #1\n## Intended use\n```\n# not a heading\n```\n###### deepest"
    assert views.card_on_the_page(card) == (
        "## mammo — v3\n\ntext #1\n### Intended use\n```\n# not a heading\n```\n###### deepest")
    # other fences (a longer one holding a shorter, tildes), indented and bare headings, hashtags
    card = "````\n```\n# code\n```\n````\n~~~\n# code\n~~~\n  # indented\n#\n#hashtag\n#\tTab"
    assert views.card_on_the_page(card) == (
        "````\n```\n# code\n```\n````\n~~~\n# code\n~~~\n  ## indented\n##\n#hashtag\n##\tTab")
    shipped = views.card_on_the_page(ModelCard((PACKAGE_WEIGHTS / "v3" / "README.md").read_text()).text)
    assert not re.search(r"^# ", shipped, re.MULTILINE) and re.search(r"^## mammo", shipped, re.MULTILINE)


def test_versions_rows_newest_first_with_the_recorded_metrics(registry: LocalModelRegistry,
                                                              v1_mammo: dict) -> None:
    rows = views.versions_rows(registry.versions(), served="v1")  # v2 published by another process
    assert [r[0] for r in rows] == ["v2", "v1"]
    metrics = v1_mammo["metrics"]
    malignant = metrics["per_class"]["malignant"]["support"]
    for row, parent, served in zip(rows, ["v1", "—"], ["not served yet", "● served"], strict=True):
        shown = dict(zip(views.VERSION_COLUMNS, row, strict=True))
        published = shown.pop("published")  # the packaged v1 "with the app", not when this store opened
        assert (published == "with the app") if row[0] == "v1" else re.fullmatch(
            r"\d{1,2} [A-Z][a-z]{2} \d{4}, \d\d:\d\d UTC", published), row
        created = datetime.fromisoformat(v1_mammo["created_at"])
        assert shown.pop("trained") == f"{created.day} {created:%b %Y}"
        assert shown == {
            "version": row[0],
            "served": served,
            "parent": parent,
            "training images": v1_mammo["data"]["n_train"],
            "AUC malignant, recorded split (95% CI)": "{:.2f} ({:.2f}–{:.2f})".format(
                metrics["auc_malignant"], *metrics["auc_malignant_ci95"]),
            "malignant films flagged, recorded split": "{} of {}".format(
                round(metrics["sensitivity"] * malignant), malignant),
            "accuracy, recorded split": f"{metrics['accuracy']:.3f}",
            "balanced accuracy, recorded split": f"{metrics['balanced_accuracy']:.3f}",
            "recorded split's films": metrics["n"],
            "AUC malignant, cross-validated (95% CI)": "—",  # v1 was not cross-validated
        }


def test_versions_rows_mark_figures_on_the_validation_set_that_chose_the_epoch_as_optimistic(
        registry: LocalModelRegistry) -> None:
    """A version trained with no held-out patients records its figures on its validation set, which
    chose its epoch and threshold: the Models table said "recorded split" only (a metrics review)."""
    versions = [dict(row) for row in registry.versions()]
    versions[-1]["split"] = {**versions[-1]["split"], "name": "validation", "metrics_on": "validation"}
    rows = {row[0]: dict(zip(views.VERSION_COLUMNS, row, strict=True))
            for row in views.versions_rows(versions)}
    column = "AUC malignant, recorded split (95% CI)"
    assert rows["v2"][column].endswith(") (validation: optimistic)")
    assert rows["v1"][column].endswith(")") and "optimistic" not in rows["v1"][column]  # held-out patients


def test_versions_rows_mark_a_newer_version_that_cannot_be_served(registry: LocalModelRegistry) -> None:
    rows = views.versions_rows(registry.versions(), "v1", "v2 cannot be served (its weights are damaged)")
    assert [row[:2] for row in rows] == [["v2", "✕ cannot be served"], ["v1", "● served"]]
    assert [row[1] for row in views.versions_rows(registry.versions(), "v2")] == ["● served", ""]


def test_versions_rows_show_a_cross_validated_estimate_beside_the_holdout(tmp_path: Path) -> None:
    registry = LocalModelRegistry(tmp_path / "home")
    assert registry.seed(packaged_versions()) == SERVED
    rows = {row[0]: dict(zip(views.VERSION_COLUMNS, row, strict=True)) for row in views.versions_rows(
        registry.versions(), served=SERVED)}
    for version in PACKAGED:
        mammo = json.loads((PACKAGE_WEIGHTS / version / "config.json").read_text())["mammo"]
        shown = rows[version]["AUC malignant, cross-validated (95% CI)"]
        if mammo.get("cv"):  # the estimate to quote, next to the recorded split's figure
            low, high = mammo["cv"]["auc_malignant_ci95"]
            assert shown == f"{mammo['cv']['auc_malignant']:.2f} ({low:.2f}–{high:.2f})"
        else:
            assert shown == "—"
        assert rows[version]["AUC malignant, recorded split (95% CI)"].startswith(
            f"{mammo['metrics']['auc_malignant']:.2f} (")
        # packaged: "with the app", not when this store first opened; trained when it was made
        created = datetime.fromisoformat(mammo["created_at"])
        assert rows[version]["trained"] == f"{created.day} {created:%b %Y}"
        assert rows[version]["published"] == "with the app"


def test_the_rollback_question_compares_versions_on_the_same_films_where_it_can(tmp_path: Path) -> None:
    """v1's estimate is on its held-out films, v3's out of fold: the question says they are of
    different kinds and gives both versions on the same 38 held-out films."""
    registry = LocalModelRegistry(tmp_path / "home")
    registry.seed(packaged_versions())
    rows = {row["version"]: row for row in registry.versions()}
    if not {"v1", "v3"} <= set(rows):
        pytest.skip("the packaged v1 and v3 are needed")
    asked = views.rollback_question("v1", "v3", rows)
    assert asked.startswith("Serve **v1** again instead of **v3**")
    assert "holdout set (38 films)" in asked and "5-fold cross-validation by patient" in asked
    v1, v3 = (rows[v]["metrics"] for v in ("v1", "v3"))
    same = f"On the same 38 held-out films, never trained on by either: **v1** AUC {v1['auc_malignant']:.2f} "
    assert f"{same}(95% CI" in asked and f"**v3** {v3['auc_malignant']:.2f} (95% CI" in asked
    # v1 was scored on the 512 px copies, v3 on the 1024 px ones: the question names each (a walk read
    # "the same 38 held-out films" beside the Retrain tab's other figure for v3, scored on one copy)
    copies = [data_name(rows[v]["data"]["sources"][0]) for v in ("v1", "v3")]
    assert copies[0] != copies[1]
    named = rf"\*\*v1\*\* AUC [^,]*\) on \*{copies[0]}\*, \*\*v3\*\* [^(]*\([^)]*\) on \*{copies[1]}\*\."
    assert re.search(named, asked) and "scored on different copies of these films" in asked
    # both on one copy (also at another path, or one copy unrecorded): nothing more to say
    elsewhere = [f"/srv/{source}" for source in rows["v3"]["data"]["sources"]]
    for data in (rows["v3"]["data"], {**rows["v3"]["data"], "sources": elsewhere}, {}):
        one_copy = views.rollback_question("v1", "v3", {"v1": {**rows["v1"], "data": data}, "v3": rows["v3"]})
        assert " on *" not in one_copy and "different copies" not in one_copy and "On the same 38" in one_copy
    # both held-out figures: nothing more to say
    same_kind = views.rollback_question("v1", "v1", {"v1": rows["v1"]})
    assert "different kinds" not in same_kind and "On the same" not in same_kind
    # another split: no figure on "the same" films
    moved = {**rows["v1"], "split": {**rows["v1"]["split"], "seed": 1}}
    other = views.rollback_question("v1", "v3", {"v1": moved, "v3": rows["v3"]})
    assert "different kinds" in other and "On the same" not in other


def test_versions_rows_say_why_a_version_cannot_be_read(registry: LocalModelRegistry) -> None:
    (registry.models_dir / "v2" / "config.json").write_text("{not json")
    versions = registry.versions()
    error = versions[-1]["error"]
    rows = views.versions_rows(versions)
    assert [r[0] for r in rows] == ["v2", "v1"]  # listed, not hidden
    # a row of dashes alone does not tell the visitor that v2 is broken, nor why
    assert any(str(cell) == error or "error" in str(cell).lower() for cell in rows[0]), rows[0]


def test_counts_frame_long_format() -> None:
    summary = {"normal": {"base": 116, "cases": 2}, "benign": {"base": 36, "cases": 0},
               "malignant": {"base": 30, "cases": 5}}
    frame = views.counts_frame(summary)
    assert list(frame.columns) == ["label", "source", "images"]
    assert len(frame) == 6
    assert frame.groupby("label")["images"].sum().to_dict() == {"normal": 118, "benign": 36, "malignant": 35}
    assert frame.set_index(["label", "source"]).loc[("malignant", "cases"), "images"] == 5
    assert views.counts_frame({}).empty


def test_roc_frame_from_the_recorded_metrics(v1_mammo: dict) -> None:
    holdout, validation = v1_mammo["metrics"], v1_mammo["val_metrics"]
    no_roc = {"auc_malignant": None, "roc": None}
    frame = views.roc_frame({"holdout": holdout, "validation": validation, "no malignant": no_roc})
    assert list(frame.columns) == ["false positive rate", "true positive rate", "model"]
    counts = frame["model"].value_counts().to_dict()
    assert counts == {f"holdout (AUC {holdout['auc_malignant']:.2f})": len(holdout["roc"]["fpr"]),
                      f"validation (AUC {validation['auc_malignant']:.2f})": len(validation["roc"]["fpr"])}
    assert frame[["false positive rate", "true positive rate"]].stack().between(0, 1).all()


def test_curves_frame_from_the_training_history(v1_mammo: dict) -> None:
    history = v1_mammo["training"]["history"]
    frame = views.curves_frame(history)
    assert list(frame.columns) == ["epoch", "value", "series"]
    assert len(frame) == 2 * len(history) and set(frame["series"]) == {"train loss", "validation loss"}
    auc = views.curves_frame(history, views.AUC_CURVE).set_index("epoch")["value"].to_dict()
    assert auc == {h["epoch"]: h["val_auc"] for h in history}
    # an epoch without a validation AUC (no malignant case in validation) has no AUC point
    without_auc = [{**history[0], "val_auc": None}]
    assert views.curves_frame(without_auc, views.AUC_CURVE).empty


def test_the_loss_plot_title_says_which_losses_and_why_no_validation_loss(v1_mammo: dict) -> None:
    history = v1_mammo["training"]["history"]
    losses, aucs = views.curves_frame(history), views.curves_frame(history, views.AUC_CURVE)
    assert views.loss_plot_title(losses, aucs) == "Training and validation loss per epoch"
    patch = [{**h, "val_loss": None} for h in history]  # the patch recipe: validation AUC only
    # the AUC plot by its title, not "beside": on a phone it is under this one (a walk)
    assert views.loss_plot_title(views.curves_frame(patch), aucs).endswith(
        "(validation: see the Validation AUC per epoch plot)")
    folds = [{**h, "val_loss": None, "val_auc": None} for h in history]  # cross-validated: none
    assert "no validation films" in views.loss_plot_title(
        views.curves_frame(folds), views.curves_frame(folds, views.AUC_CURVE))


def test_confusion_frame_rows_are_the_true_classes(v1_mammo: dict) -> None:
    metrics = v1_mammo["metrics"]
    frame = views.confusion_frame(metrics)
    assert list(frame.columns) == ["true"] + [f"predicted {c}" for c in metrics["classes"]]
    assert frame["true"].tolist() == metrics["classes"]
    support = {c: metrics["per_class"][c]["support"] for c in metrics["classes"]}
    assert dict(zip(frame["true"], frame.drop(columns="true").sum(axis=1), strict=True)) == support
    assert views.confusion_frame({}).columns.tolist() == ["true"]


def test_comparison_frame(v1_mammo: dict) -> None:
    current, candidate = v1_mammo["metrics"], v1_mammo["val_metrics"]
    frame = views.comparison_frame(current, candidate).set_index("metric")
    assert list(frame.columns) == ["current", "candidate"]
    assert list(frame.index) == list(views.METRIC_NAMES.values())  # in words, not keys
    assert not any("_" in name for name in frame.index)
    assert frame.loc["films evaluated"].tolist() == [str(current["n"]), str(candidate["n"])]
    assert frame.loc["AUC, malignant vs rest", "current"] == f"{current['auc_malignant']:.3f}"
    lo, hi = candidate["auc_malignant_ci95"]
    assert frame.loc["95% CI of that AUC (bootstrap)", "candidate"] == f"{lo:.3f}–{hi:.3f}"
    assert views.comparison_frame({}, current).set_index("metric").loc["accuracy (most likely class)",
                                                                       "current"] == "—"
    with_baseline = views.comparison_frame(current, candidate, {"n": 38, "auc_malignant": 0.55})
    assert list(with_baseline.columns) == ["metric", "current", "candidate", "baseline (logistic regression)"]
    shown = with_baseline.set_index("metric")
    assert shown.loc["AUC, malignant vs rest", "baseline (logistic regression)"] == \
        "0.550"
    # beside the ECE, what a perfectly calibrated model shows on these films by chance (none recorded
    # by models made before it was)
    chance = "ECE a perfectly calibrated model shows on these films by chance (95%)"
    ranged = views.comparison_frame(current, {**candidate, "ece_malignant_by_chance95": [0.0813, 0.1774]})
    assert ranged.set_index("metric").loc[chance].tolist() == ["—", "0.08–0.18"]
    # a collapsed candidate (one malignancy score for every film): its AUC, interval and ECE say so
    collapsed = {**candidate, "auc_malignant": 0.5, "auc_malignant_ci95": [0.5, 0.5], "ece_malignant": 0.004,
                 "roc": {"thresholds": [2.0, 0.31, 0.31]}}
    column = views.comparison_frame(current, collapsed).set_index("metric")["candidate"]
    assert column["AUC, malignant vs rest"] == "— (one score for every film)"
    assert column["95% CI of that AUC (bootstrap)"] == "—"
    assert column["calibration error (ECE, malignant)"] == "0.004 (one score for every film)"
    assert column["accuracy (most likely class)"] == f"{candidate['accuracy']:.3f}"  # still what it was
    # and its flag flags every film or none: a walk read its "specificity 1.000" as a figure
    flagged = views.comparison_frame(current, {**collapsed, "sensitivity": 0.0, "specificity": 1.0})
    column = flagged.set_index("metric")["candidate"]
    said = "1.000 (one score for every film: it flags all or none)"
    assert column["specificity, at the review cut-off"] == said
    assert column["sensitivity for malignant, at the review cut-off"].startswith("0.000 (one score")


def test_comparison_frame_formats_whole_valued_metrics_as_metrics() -> None:
    # The app hands the retrain summary to this view through gr.JSON: the browser sends 1.0 back as 1
    # (JavaScript has one number type), so a perfect AUC arrives as an int and must still read 1.000.
    metrics = {"n": 10, "auc_malignant": 1, "auc_macro": 1, "accuracy": 0.9, "sensitivity": 1,
               "specificity": 0, "balanced_accuracy": 0.94, "auc_malignant_ci95": [1, 1]}
    frame = views.comparison_frame(metrics, metrics)
    shown = dict(zip(views.METRIC_NAMES, frame["current"], strict=True))
    assert shown["n"] == "10"
    assert [shown[k] for k in ("auc_malignant", "auc_macro", "sensitivity", "specificity")] == [
        "1.000", "1.000", "1.000", "0.000"]
    assert shown["auc_malignant_ci95"] == "1.000–1.000"
    few = views.comparison_frame(metrics, {**metrics, "auc_malignant_ci95": None})  # < 5 malignant films
    assert list(few.set_index("metric").loc["95% CI of that AUC (bootstrap)"]) == [
        "1.000–1.000", "none: fewer than 5 films of a class"]


def test_metadata_from_fields_drops_only_empty_fields() -> None:
    fields = {"view": "CC", "laterality": None, "density": "", "birads": 0, "biopsy_confirmed": False,
              "age": 61, "notes": "", "extra": []}
    # BI-RADS 0 ("needs more imaging") is a real category; only unset fields are dropped
    assert views.metadata_from_fields(**fields) == {"view": "CC", "birads": 0, "biopsy_confirmed": False,
                                                    "age": 61}
    assert views.metadata_from_fields() == {}


def test_reliability_frame_has_the_diagonal_and_each_models_bins() -> None:
    metrics = {"ece_malignant": 0.05, "reliability": [
        {"low": 0.0, "high": 0.1, "n": 30, "mean_predicted": 0.04, "observed": 0.03},
        {"low": 0.5, "high": 0.6, "n": 5, "mean_predicted": 0.55, "observed": 0.6}]}
    frame = views.reliability_frame({"v2, out of fold": metrics})
    # the model's bins first (its colour is then the one it has in the ROC plot), the diagonal last
    assert frame["model"].tolist() == ["v2, out of fold (ECE 0.050)"] * 2 + ["perfect calibration"] * 2
    assert frame["observed malignant share"].between(0, 1).all()
    assert frame["films in the bin"].tolist()[:2] == [30, 5]  # shown on hover: a bin of few films jumps
    assert frame["mean predicted P(malignant)"].tolist()[:2] == [0.04, 0.55]  # rounded for the tooltip


def test_estimate_text_names_the_split_and_prefers_cross_validation(v1_mammo: dict) -> None:
    cv = {"n_folds": 5, "n": 220, "auc_malignant": 0.7512, "auc_malignant_ci95": [0.66, 0.84],
          "auc_abnormal": {"auc": 0.71}, "ece_malignant": 0.041, "reliability": []}
    holdout = {"n": 38, "auc_malignant": 0.8, "auc_malignant_ci95": [0.6, 0.95]}
    text = views.estimate_text({"version": "v2", "cv": cv, "metrics": holdout, "split": {"name": "holdout"},
                                "data": {"sources": ["../shared/data/mias1024"]}})
    assert "Served: v2" in text and "5-fold cross-validation" in text and "0.75 (95% CI 0.66–0.84)" in text
    # the data named, not the path (a retrain scores the served version again on this install's data)
    assert "holdout set when it was trained (38 films of mias1024)" in text and "shared" not in text
    assert list(views.estimate_metrics({"version": "v2", "cv": cv})) == ["v2, out of fold"]
    old = views.estimate_text(v1_mammo)
    assert "Served: v1" in old and "holdout set when it was trained (38 films of mias)" in old
    # an AUC on too few malignant films comes with no interval, and says why (it read "1.00-1.00")
    eight = {"n": 8, "auc_malignant": 1.0, "auc_malignant_ci95": None}
    few = views.estimate_text({"version": "v4", "metrics": eight, "split": {"name": "holdout"}})
    assert ("On its holdout set when it was trained (8 films): malignant-vs-rest AUC 1.00 (none: fewer "
            "than 5 films of a class)") in few


@pytest.mark.parametrize("version", PACKAGED)
def test_every_version_shows_its_recorded_figures_without_retraining(version: str) -> None:
    mammo = json.loads((PACKAGE_WEIGHTS / version / "config.json").read_text())["mammo"]
    caption, roc, losses, aucs, reliability, confusion = views.version_figures(mammo)
    split_metrics = mammo["metrics"]
    expected = {f"{version}, holdout (AUC {split_metrics['auc_malignant']:.2f})"}
    if mammo.get("cv"):  # v2 was cross-validated: its out-of-fold figures are shown beside the holdout's
        expected.add(f"{version}, out of fold (AUC {mammo['cv']['auc_malignant']:.2f})")
    assert set(roc["model"]) == expected
    assert len(roc) == sum(len(m["roc"]["fpr"]) for m in views.evaluations(mammo).values())
    history = mammo["training"]["history"]
    assert sorted(set(losses["epoch"])) == [h["epoch"] for h in history]
    assert set(losses["series"]) <= {"train loss", "validation loss"}  # AUC on its own 0-1 plot
    assert aucs["value"].tolist() == [h["val_auc"] for h in history if h.get("val_auc") is not None]
    assert confusion.iloc[:, 1:].to_numpy().tolist() == split_metrics["confusion_matrix"]
    assert list(confusion["true"]) == split_metrics["classes"]
    calibrated = [m for m in views.evaluations(mammo).values() if m.get("reliability")]
    assert len(reliability) == 2 + sum(len(m["reliability"]) for m in calibrated)  # + the diagonal
    assert ("No calibration recorded" in caption) == (not calibrated)
    assert views.has_calibration(reliability) == bool(calibrated)
    assert f"{len(history)} epoch(s)" in caption and f"({split_metrics['n']} films)" in caption


@pytest.mark.parametrize(("training", "expected"), [
    ({"recipe": "film"}, "may stop early"),
    ({"recipe": "patch", "epochs": 12}, "epochs chosen above of patch training."),
    ({"recipe": "patch", "epochs": 0, "film_epochs": 6}, "then 6 epochs of whole-film fine-tuning"),
    ({"recipe": "patch", "patch_size": 96}, "Keep films at least 384 px (four of its 96 px patches across)"),
])
def test_the_retrain_tab_says_what_a_retrain_runs(training: dict, expected: str) -> None:
    assert expected in views.retrain_recipe_text({"training": training})


@pytest.mark.parametrize(("training", "warned"), [
    ({"recipe": "patch", "patch_size": 96, "image_size": 512}, None),
    ({"recipe": "patch", "patch_size": 96, "image_size": 128}, "At 128 px, below the 384 px"),
    ({"recipe": "patch", "patch_size": 96, "image_size": 384}, None),  # four patches across
    ({"recipe": "patch", "image_size": 256}, "At 256 px, below the 384 px"),  # 96 px by default
    ({"recipe": "patch", "patch_size": 32, "image_size": 128}, None),
    ({"recipe": "film", "image_size": 64}, None),  # whole films: any size
])
def test_a_retrain_on_films_too_small_for_the_recipes_patches_is_warned_of(training: dict,
                                                                           warned: str | None) -> None:
    warning = views.small_films_warning(training)
    if warned is None:
        assert warning is None
    else:
        assert warning.startswith(warned) and warning.endswith("and the gate then refuses it.")
    summary = {"current_metrics": {"auc_malignant": 0.7}, "current_version": "v3", "version": "v3",
               "candidate_metrics": {"auc_malignant": 0.6, "n": 38}, "promoted": False,
               "film_size_warning": warning}
    assert (warning or "") in views.verdict_text(summary)
    assert ("below the" in views.verdict_text(summary)) == (warning is not None)


@pytest.mark.parametrize(("version", "trained_on_validation"), [("v1", False), ("v2", True), ("v3", True)])
def test_the_retrain_tab_warns_when_the_served_version_learnt_the_validation_films(
        version: str, trained_on_validation: bool) -> None:
    """v2 and v3 were cross-validated and trained on train + validation (their configs say n_val 0);
    v1 kept its validation patients apart."""
    from mammo.config import PACKAGE_WEIGHTS

    mammo = json.loads((PACKAGE_WEIGHTS / version / "config.json").read_text())["mammo"]
    assert (mammo["data"]["n_val"] == 0) == trained_on_validation
    text = views.retrain_recipe_text(mammo)
    assert ("trained on the validation patients as well" in text) == trained_on_validation
    assert ("Untick *Start from the current version*" in text) == trained_on_validation


def test_bulk_receipt_text_counts_what_was_stored_and_names_what_was_skipped() -> None:
    receipt = {"case_ids": ["a" * 32, "b" * 32], "submitted_at": "2026-12-02T12:00:00+00:00",
               "total_cases": 7, "status": "queued", "warning": "Hub unreachable",
               "skipped": [{"index": 2, "name": "cases.zip: benign/x_1.png", "duplicate_of": "c" * 32},
                           {"index": 3, "name": "y.png", "withdrawn": True},
                           {"index": 4, "name": "z.png", "stored_label": "benign",
                            "given_label": "malignant"}]}
    text = views.bulk_receipt_text(receipt)
    assert (r"Skipped, withdrawn before, or a copy of a withdrawn case's image: not taken again: "
            r"y\.png.") in text
    assert text.startswith("**2 cases queued for upload")
    assert "holds 7 submitted cases" in text and "Note: Hub unreachable" in text
    # a file name, as typed, and the case it is (a walk)
    assert r"Skipped, stored before: cases\.zip\: benign/x\_1\.png (case `cccccccc`), z\.png." in text
    assert text.count("another label") == 1 and (  # a label that differs is said, as a single case's is
        r"⚠️ Stored before under another label\: z\.png \(stored as benign, given malignant\); if a stored "
        r"label is wrong, correct the case's label instead\.") in text
    many = [{"index": i, "name": f"f{i}.png", "stored_label": "normal", "given_label": "benign"}
            for i in range(7)]
    assert label_conflict_text(many).startswith(  # five named, as the refusal of a whole batch names
        "Stored before under another label: f0.png (stored as normal, given benign), f1.png")
    assert "f4.png (stored as normal, given benign), and 2 more; if a" in label_conflict_text(many)
    one = views.bulk_receipt_text({**receipt, "case_ids": ["a" * 32], "status": "stored", "skipped": [],
                                   "warning": None, "total_cases": 1})
    assert one.startswith("**1 case stored**") and "holds 1 submitted case." in one and "Skipped" not in one
    refused = views.bulk_receipt_text({"refused": "Nothing was stored: x_1.zip: 'b.png' is not inside a "
                                                  "label folder"})
    assert refused == r"⚠️ Nothing was stored\: x\_1\.zip\: 'b\.png' is not inside a label folder"
    assert views.unreadable_text("not an image: a_b*.png") == (
        r"**This file cannot be read.** not an image\: a\_b\*\.png")
    # a single submission's refusal, kept where its receipt goes: as written, never read as Markdown
    assert views.refused_text("Age in years: 12 is not 18-110 *years*") == (
        r"⚠️ **Not stored.** Age in years\: 12 is not 18\-110 \*years\*")
    assert views.refused_text("Nothing was stored: Age in years ('age') is no number") == (  # said once
        r"⚠️ **Not stored.** Age in years \('age'\) is no number")


@pytest.mark.parametrize("score, flagged", [(15.1, True), (3.0, False)])
def test_the_headline_is_the_review_flag_and_agrees_with_the_words_below(score: float, flagged: bool) -> None:
    details = {"model_version": "v3", "malignancy_score": score, "threshold": 8.8, "above_threshold": flagged,
               "label": "normal", "heatmap_method": "Lesion map"}
    headline = views.flag_headline(details)
    assert headline.startswith("### Flagged for review:" if flagged else "### Not flagged:")
    assert re.findall(r"[\d.]+ %", headline) == re.findall(r"[\d.]+ %", views.score_text(details))
    assert "normal" not in headline  # the most likely class is not the verdict
    assert views.flag_headline({"malignancy_score": None}) == ""
    assert "no review cut-off" in views.flag_headline({"malignancy_score": 42.0, "threshold": None})
    # a walk's colour picture was headed "Flagged for review", the reason to doubt it far below
    photo = views.flag_headline({**details, "not_like_a_film": "it is a colour picture"})
    assert photo.startswith("### Not like a mammogram:") and "flagged" not in photo.lower()
    assert f"({score:.1f} %)" in photo and "mean little" in photo


def test_the_heat_map_key_says_which_scale_its_colours_are_on() -> None:
    lesion = views.heatmap_key({"heatmap_method": "Lesion map", "label": "normal"})
    assert "one scale for every film" in lesion and "can be compared" in lesion
    cam = views.heatmap_key({"heatmap_method": "Grad-CAM", "label": "normal"})
    assert "(*normal*)" in cam and "within this image" in cam and "cannot be compared" in cam
    assert "drawn only there" in cam and "flagged for review" not in cam
    # a film flagged for review whose most likely class is normal: the CAM is not the flag's evidence
    flagged = views.heatmap_key({"heatmap_method": "Grad-CAM", "label": "normal", "above_threshold": True})
    assert flagged.startswith("**This film is flagged for review while its most likely class is normal: the "
                              "map shows the evidence for that class, not for the flag.**")  # first, in bold
    assert "flagged" not in views.heatmap_key({"heatmap_method": "Grad-CAM", "label": "malignant",
                                               "above_threshold": True})
    eigen = views.heatmap_key({"heatmap_method": "EigenCAM", "label": "normal"})
    assert "for no class in particular" in eigen and "normal" not in eigen
    assert views.heatmap_key({"heatmap_method": None}) == ""
    # a colour bar beside the words: 0 to 1 on the lesion map's one scale, weakest to strongest for a CAM
    assert lesion.endswith(views.heatmap_colour_bar("0", "1")) and "linear-gradient" in lesion
    assert cam.endswith(views.heatmap_colour_bar("weakest", "strongest in this film"))
    # a Lesion map asked of a model without one (v1 served again): said before the key of what is drawn
    instead = views.heatmap_key({"heatmap_method": "Grad-CAM", "label": "normal", "model_version": "v1"},
                                asked="Lesion map")
    assert instead == "*v1 has no Lesion map: Grad-CAM is drawn instead.*\n\n" + cam
    assert views.heatmap_key({"heatmap_method": "Grad-CAM", "label": "normal"}, asked="Grad-CAM") == cam


def test_the_heat_map_keys_colours_are_the_overlays() -> None:
    """The key's colours are the overlay's colour map (OpenCV's jet) at the values it names."""
    import cv2

    for value, colour in views.HEATMAP_COLOURS:
        drawn = cv2.applyColorMap(np.uint8([[round(255 * value)]]), cv2.COLORMAP_JET)[0, 0][::-1]
        assert np.abs(drawn.astype(int) - colour).max() <= 4, (value, drawn, colour)


def test_an_offered_image_stored_as_a_base_films_case_says_a_retrain_leaves_it_out() -> None:
    """Label next stored an offered base film and said only "Stored as case ...": the clinician took
    it that the model would learn the label."""
    receipt = {"case_id": "c" * 32, "label": "malignant", "base_film": "this image is a film of the base "
               "data (labelled malignant in the base data): a retrain leaves this case out of training"}
    text = views.pending_stored_text(receipt)
    assert text.startswith(f"Stored as case `{'c' * 32}` (malignant); it left the pool.")
    assert "⚠️ Note: this image is a film of the base data" in text
    assert views.pending_stored_text({"case_id": "d" * 32, "label": "normal"}).count("Note") == 0
    queued = views.pending_stored_text({"case_id": "e" * 32, "label": "normal", "status": "queued"})
    assert queued.startswith(f"Case `{'e' * 32}` (normal) is queued for upload to the dataset (kept on this "
                             "server until the Hub answers); it left the pool.")


def test_a_label_correction_reads_from_the_old_label_to_the_new_in_the_audit_table() -> None:
    event = {"at": "2026-12-03T12:00:00.000+00:00", "action": "label corrected", "user": "alice",
             "details": {"case_id": "c" * 32, "label": "benign", "status": "stored", "was": "malignant"}}
    [[_, action, user, what]] = views.audit_rows([event])
    assert (action, user) == ("label corrected", "alice")
    assert what == f"label: malignant → benign; case id: {'c' * 32}; status: stored"


def test_the_audit_table_cuts_case_ids_in_a_list_but_not_field_names() -> None:
    """A walk saw "metadata given: 5: age, biopsy_c, birads, …": the cut meant for ids hit names."""
    event = {"at": "2026-12-03T12:00:00.000+00:00", "action": "bulk import", "user": "alice",
             "details": {"case_ids": ["a" * 32, "b" * 32], "metadata_given": ["age", "biopsy_confirmed"]}}
    [[_, _, _, what]] = views.audit_rows([event])
    assert what == "case ids: 2: aaaaaaaa, bbbbbbbb; metadata given: 2: age, biopsy_confirmed"
    # a retrain's options: an image size left to the model's is not shown as "image size None"
    retrain = {**event, "action": "retrain started",
               "details": {"options": {"epochs": 1, "image_size": None, "from_current": True}}}
    assert views.audit_rows([retrain])[0][3] == "options: epochs 1, from current yes"
    # a walk saw raw keys ("candidate auc ci resampled: patients"); a submission's warning is named too
    figures = {"candidate_auc_malignant_ci95": [0.5, 0.8], "candidate_auc_ci_resampled": "patients",
               "reason": "not promoted: worse"}  # the why first, then the figures, whatever their order
    said = views.audit_rows([{**event, "action": "rejection", "details": figures}])[0][3]
    assert said == ("reason: not promoted: worse; candidate AUC 95% CI: 0.500–0.800; "
                    "candidate interval drawn over: patients"), said
    doubted = {**event, "action": "submission", "details": {"label_doubt": "BI-RADS 6 was given"}}
    assert views.audit_rows([doubted])[0][3] == "warned: BI-RADS 6 was given"


def test_the_gates_reason_names_every_gate_metric_in_words() -> None:
    from mammo.config import GATE_METRICS

    for metric in GATE_METRICS:
        shown = views.gate_reason_text(f"promoted: candidate {metric} 0.8000 on the holdout; the current "
                                       f"version has no {metric} there")
        assert "_" not in shown and shown.count("candidate ") == 1, shown  # no key like auc_malignant
    assert views.gate_reason_text("not promoted: candidate auc_malignant 0.5000 < current 0.7000").startswith(
        "not promoted: candidate AUC (malignant vs rest) 0.5000")


def test_an_interval_drawn_over_patients_says_so_where_it_is_shown() -> None:
    """v1-v3 recorded intervals over films; newer ones draw whole patients: side by side in the Models
    table and the verdicts, the reader is told which is which."""
    older = {"auc_malignant": 0.73, "auc_malignant_ci95": [0.62, 0.84]}
    newer = {**older, "auc_ci_resampled": "patients"}
    assert views.auc_and_ci(older) == "0.73 (95% CI 0.62–0.84)"
    assert views.auc_and_ci(newer) == "0.73 (95% CI 0.62–0.84, by patient)"
    assert views.auc_and_ci(newer, label="") == "0.73 (0.62–0.84, by patient)"
    assert views.auc_and_ci({**newer, "auc_malignant_ci95": None, "n": 8}) == (
        "0.73 (none: fewer than 5 films or patients of a class)")  # six films of three women, say
    assert views.auc_and_ci({**older, "auc_malignant_ci95": None}) == (
        "0.73 (none: fewer than 5 films of a class)")
    frame = views.comparison_frame(newer, older)
    shown = dict(zip(frame["metric"], frame["current"], strict=True))
    assert shown[views.METRIC_NAMES["auc_malignant_ci95"]] == "0.620–0.840, by patient"
    assert "by patient" not in dict(zip(frame["metric"], frame["candidate"], strict=True))[
        views.METRIC_NAMES["auc_malignant_ci95"]]


def test_the_label_next_pool_is_offered_by_id_start_and_uncertainty_and_counted_in_words():
    entries = [{"id": "a" * 64, "uncertainty": 12.345}, {"id": "b" * 64, "uncertainty": None}]
    assert views.queue_choices(entries) == [(f"{'a' * 12} (uncertainty 12.3)", "a" * 64),
                                            (f"{'b' * 12} (uncertainty —)", "b" * 64)]
    assert [views.queue_note(entries[:n]) for n in (0, 1, 2)] == [
        "No image is waiting for a label.", "1 image waiting for a label.", "2 images waiting for a label."]


def test_an_offer_says_what_was_kept_or_since_when_it_waits():
    new = {"id": "c" * 64, "already_offered": False, "uncertainty": 7.25, "offered_at": "2026-12-05T04:30:00"}
    assert views.offer_text(new).startswith(f"Offered for labelling as `{'c' * 12}` (uncertainty 7.2 points)")
    assert "(no uncertainty measured)" in views.offer_text({**new, "uncertainty": None})
    assert views.offer_text({**new, "already_offered": True}) == (
        f"This image is already waiting for a label as `{'c' * 12}` (offered 2026-12-05 04:30 UTC): nothing "
        "more to do.")


def test_the_questions_before_a_withdrawal_and_a_republication_name_what_they_do():
    asked = views.withdrawal_question("d" * 32, "benign", "consent withdrawn")
    assert asked.startswith(f"Withdraw case `{'d' * 32}` (labelled benign) because: consent withdrawn?")
    assert "cannot be undone here" in asked
    republish = views.republish_question("v3", "v4 cannot be loaded (its weights are damaged)")
    assert republish.startswith("Publish **v3** again as the newest version? v4 cannot be loaded (its "
                                "weights are damaged), so v3 is still served")
    case = {"case_id": "e" * 32, "label": "normal", "submitted_at": "2026-12-01T10:00"}
    assert views.case_choices([case]) == [(f"{'e' * 8} (normal, 2026-12-01)", "e" * 32)]


def test_the_gate_text_names_where_a_rejected_candidate_is_kept():
    reason = "not promoted: candidate auc_malignant 0.5000 < current 0.7000 - 0.01 on the holdout"
    kept = views.gate_text({"reason": reason, "rejected_id": "r-20261205"})
    assert kept == f"Gate: {views.gate_reason_text(reason)}. The candidate is kept as `r-20261205`."
    assert views.gate_text({"reason": reason}) == f"Gate: {views.gate_reason_text(reason)}."


@pytest.mark.parametrize(("header", "filled", "given", "set_to", "now", "said", "warned"), [
    # an empty form takes what the header states, and says so
    ({"laterality": "L", "view": "CC"}, {}, {"laterality": None, "view": None},
     {"laterality": "L", "view": "CC"}, {"laterality": "L", "view": "CC"}, ["Laterality L", "View CC"], {}),
    # the next DICOM replaces what the last one's header filled in (a review: it kept the first's)
    ({"laterality": "R"}, {"laterality": "L"}, {"laterality": "L", "view": None},
     {"laterality": "R"}, {"laterality": "R"}, ["Laterality R"], {}),
    # a header stating no side empties the side the last header filled in
    ({}, {"laterality": "L"}, {"laterality": "L", "view": None}, {"laterality": None}, {}, [], {}),
    # the clinician's choice stays; a header that differs is warned of
    ({"laterality": "L"}, {}, {"laterality": "R", "view": None}, {}, {}, [], {"laterality": ("L", "R")}),
    ({"laterality": "R"}, {}, {"laterality": "R", "view": None}, {}, {}, [], {}),
    # the same header again fills in nothing new to say
    ({"laterality": "R"}, {"laterality": "R"}, {"laterality": "R", "view": None}, {},
     {"laterality": "R"}, [], {}),
])
def test_a_dicom_header_fills_the_form_where_no_clinician_chose(header, filled, given, set_to, now, said,
                                                                warned) -> None:
    fill = views.header_fill(header, filled, given)
    assert (fill.set_to, fill.filled, fill.filled_in, fill.differ) == (set_to, now, said, warned)
    assert (fill.info is None) == (not said) and (fill.warning is None) == (not warned)
    if said:
        assert fill.info.startswith(" and ".join(said) + " filled in from the DICOM file's header")
        assert fill.stored_note == " and ".join(said) + " filled in from the DICOM file's header."
    if warned:
        assert fill.warning == ("The DICOM file's header says Laterality L (the form says R): check which "
                                "is right.")
        assert fill.stored_note == "The DICOM file's header says Laterality L (stored as given: R)."
    assert (fill.stored_note is None) == (not said and not warned)
