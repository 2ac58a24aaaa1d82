"""The Analytics tab's tables, from prediction-log records."""
from __future__ import annotations

from mammo import analytics


def record(at: str, label: str, score: float | None) -> dict:
    return {"at": at, "label": label, "malignancy_score": score}


def test_scores_fall_in_ten_bins_and_no_score_draws_no_bars() -> None:
    records = [record("2026-12-01T09:00:00Z", "normal", 4.0),
               record("2026-12-01T10:00:00Z", "malignant", 95.5),
               record("2026-12-02T08:00:00Z", "benign", 100.0),
               record("2026-12-02T08:30:00Z", "benign", None)]
    frame = analytics.score_histogram(records)
    assert list(frame["malignancy score"])[:2] == ["0-10", "10-20"] and len(frame) == 10
    per_bin = dict(zip(frame["malignancy score"], frame["predictions"], strict=True))
    assert per_bin["0-10"] == 1 and per_bin["90-100"] == 2  # 100 is in the last bin
    assert frame["predictions"].sum() == 3  # the record without a score is not binned
    empty = analytics.score_histogram([record("2026-12-02T08:30:00Z", "benign", None)])
    assert empty.empty and list(empty.columns) == ["malignancy score", "predictions"]
    days = analytics.predictions_per_day(records)
    assert dict(zip(days["day"], days["predictions"], strict=True)) == {"2026-12-01": 2, "2026-12-02": 2}


def test_each_version_is_plotted_at_the_day_it_was_trained() -> None:
    holdout = {"name": "holdout"}
    versions = [{"version": "v1", "created_at": "2026-11-24T12:46:34+00:00", "split": holdout,
                 "published_at": "2026-12-02T09:43:00+00:00", "metrics": {"auc_malignant": 0.63}},
                {"version": "v2", "created_at": "2026-11-30T08:49:09+00:00", "split": holdout,
                 "published_at": "2026-12-02T09:43:00+00:00", "metrics": {"auc_malignant": 0.78},
                 "cv": {"auc_malignant": 0.69}},  # cross-validated: the figure its card quotes
                {"version": "v3", "created_at": None, "published_at": "2026-12-02T10:00:00+00:00",
                 "split": holdout, "metrics": {"auc_malignant": 0.67}, "cv": None},
                {"version": "v4", "created_at": "2026-12-02T11:00:00+00:00", "metrics": {}}]  # not measured
    frame = analytics.version_metrics(versions)
    assert frame.values.tolist() == [["2026-11-24", 0.63, "v1", "holdout"],
                                     ["2026-11-30", 0.69, "v2", "out of fold"],
                                     ["2026-12-02", 0.67, "v3", "holdout"]]  # published in the store that day


def test_the_low_confidence_table_is_said_to_be_empty_when_it_is() -> None:
    confident = {**record("2026-12-01T09:00:00Z", "normal", 4.0), "threshold": 30.0}
    near = {**record("2026-12-01T10:00:00Z", "malignant", 33.0), "threshold": 30.0}
    uncertain = {**confident, "uncertainty_high": True, "uncertainty": 12.0}
    assert analytics.low_confidence_text([], analytics.low_confidence([])) == ""  # nothing to say
    none = analytics.low_confidence_text([confident] * 2, analytics.low_confidence([confident] * 2))
    assert none.startswith("None of the 2 predictions is within 5 points") and "is empty" in none
    one = analytics.low_confidence_text([confident], analytics.low_confidence([confident]))
    assert one == ("The one prediction is not within 5 points of its review cut-off, nor highly uncertain: "
                   "the low-confidence table is empty.")
    assert analytics.low_confidence_text([near], analytics.low_confidence([near])) == \
        "The one prediction is in the low-confidence table."
    assert analytics.low_confidence_text([near, confident], analytics.low_confidence([near, confident])) == \
        "1 of the 2 predictions is in the low-confidence table."
    both = [confident, near, uncertain]
    low = analytics.low_confidence(both)
    assert list(low["why"]) == ["high uncertainty", "near the cut-off"]  # newest first
    assert analytics.low_confidence_text(both, low) == \
        "2 of the 3 predictions are in the low-confidence table."
