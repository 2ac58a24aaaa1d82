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


def test_each_version_is_plotted_at_the_minute_it_was_trained_once_per_kind_of_estimate() -> None:
    holdout = {"name": "holdout"}
    versions = [{"version": "v1", "created_at": "2026-11-24T12:46:34+00:00", "split": holdout,
                 "published_at": "2026-12-02T09:43:00+00:00",
                 "metrics": {"auc_malignant": 0.63, "auc_malignant_ci95": [0.19, 0.96], "n": 38}},
                {"version": "v2", "created_at": "2026-11-30T08:49:09+00:00", "split": holdout,
                 "published_at": "2026-12-02T09:43:00+00:00",
                 "metrics": {"auc_malignant": 0.78, "auc_malignant_ci95": [0.5, 0.97], "n": 38},
                 "cv": {"auc_malignant": 0.69, "auc_malignant_ci95": [0.58, 0.8], "n": 220}},
                {"version": "v3", "created_at": None, "published_at": "2026-12-02T10:00:00+00:00",
                 "split": holdout, "metrics": {"auc_malignant": 0.67, "n": 12}, "cv": None},  # 3 malignant
                {"version": "v4", "created_at": "2026-12-02T11:00:00+00:00", "metrics": {}},  # not measured
                {"version": "v6", "created_at": "2026-11-24T12:46:34+00:00", "split": holdout,  # v1 again
                 "rollback_of": "v1", "metrics": {"auc_malignant": 0.63, "n": 38}},
                {"version": "v5", "created_at": "2026-12-02T16:30:00+01:00",  # its own split: the CV's OOF
                 "split": {"name": "cross-validation"},
                 "metrics": {"auc_malignant": 0.7, "auc_malignant_ci95": [0.6, 0.8], "n": 220}}]
    frame = analytics.version_metrics(versions)
    assert list(frame.columns) == analytics.VERSION_METRICS_COLUMNS
    assert frame.values.tolist() == [
        ["2026-11-24 12:46", 0.63, "holdout", "v1", 38, "0.63 (0.19–0.96)"],
        ["2026-11-30 08:49", 0.78, "holdout", "v2", 38, "0.78 (0.50–0.97)"],
        ["2026-11-30 08:49", 0.69, "out of fold", "v2", 220, "0.69 (0.58–0.80)"],  # beside it, its own colour
        ["2026-12-02 10:00", 0.67, "holdout", "v3", 12, "0.67 (none: fewer than 5 films of a class)"],  # then
        ["2026-12-02 15:30", 0.7, "out of fold", "v5", 220, "0.70 (0.60–0.80)"]]  # the same day: apart (UTC)
    assert analytics.nothing_yet_text(analytics.case_growth([]), frame) == "No stored case yet."
    assert analytics.nothing_yet_text(analytics.case_growth([]), frame, withdrawn=1) == (
        "No stored case yet (1 withdrawn case left out).")
    assert analytics.nothing_yet_text(analytics.case_growth([]), analytics.version_metrics([]), 2) == (
        "No stored case yet (2 withdrawn cases left out). No version records an AUC yet.")


def test_case_growth_gives_every_label_on_every_day_so_stacked_bars_add_up() -> None:
    cases = [{"submitted_at": at, "label": label} for at, label in (
        ("2026-12-01T09:00:00Z", "benign"), ("2026-12-01T10:00:00Z", "malignant"),
        ("2026-12-03T08:00:00Z", "benign"), ("2026-12-03T09:00:00Z", "benign"),
        ("2026-12-04T07:00:00Z", "normal"))]
    frame = analytics.case_growth(cases)
    assert frame.values.tolist() == [
        ["2026-12-01", 1, "benign"], ["2026-12-01", 1, "malignant"], ["2026-12-01", 0, "normal"],
        ["2026-12-03", 3, "benign"], ["2026-12-03", 1, "malignant"], ["2026-12-03", 0, "normal"],
        ["2026-12-04", 3, "benign"], ["2026-12-04", 1, "malignant"], ["2026-12-04", 1, "normal"]]
    assert frame.groupby("day")["cases"].sum().tolist() == [2, 4, 5]  # all cases by each day
    assert analytics.case_growth([]).empty


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


def test_the_history_table_names_its_columns_in_words_and_the_csv_by_their_keys() -> None:
    record = {"at": "2026-12-03T08:00:00.000+00:00", "model_version": "v3", "label": "normal",
              "malignancy_score": 7.5, "threshold": 8.8, "above_threshold": False, "uncertainty": 2.0,
              "heatmap_method": "Lesion map", "image_sha256": "ab" * 32, "latency_s": 0.3, "user": "alice"}
    table, csv = analytics.history_frame([record], readable=True), analytics.history_frame([record])
    assert list(csv.columns) == analytics.HISTORY_COLUMNS and "user" not in csv.columns
    assert list(table.columns) == analytics.HISTORY_HEADERS and not any("_" in c for c in table.columns)
    assert table.values.tolist() == csv.values.tolist()  # the same values under either name


def test_the_tab_says_whose_predictions_it_shows() -> None:
    assert analytics.scope_text("tess", sees_everyone=True).startswith("Showing every visitor's predictions")
    own = analytics.scope_text("alice", sees_everyone=False)
    assert own.startswith("Showing your own predictions (alice).")
    anonymous = analytics.scope_text(None, sees_everyone=False)
    assert anonymous.startswith("Showing nothing: sign in with Hugging Face")
    assert all(text.endswith("No image, file name or DICOM tag is ever logged.")
               for text in (anonymous, analytics.scope_text("tess", sees_everyone=True)))
