"""DICOM through the live app: no identifying tag reaches the store or the log; window and MONOCHROME1 apply.

The DICOM files are ``tests/data/bad/identified*.dcm`` (scripts/make_bad_inputs.py): synthetic pixels
with fake but distinctive PatientName, PatientID, birth and study dates, accession number and
institution. Each is submitted and predicted through ``gradio_client``; then every byte of every file
under MAMMO_HOME (parquet shards, card, models, locks), every string column of the loaded dataset,
the stored PNGs' text chunks, the API answers and the app's log are searched for those values.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import pydicom
import pytest
from app_server import ROOT, AppProcess
from gradio_client import handle_file
from PIL import Image
from pypdf import PdfReader

from mammo.imaging import read_image, sha256_of_pixels
from mammo.store import CaseStore

BAD = ROOT / "tests" / "data" / "bad"
IDENTIFIED = [e for e in json.loads((BAD / "MANIFEST.json").read_text()) if "identifiers" in e]
LABELS = ["normal", "benign", "malignant"]


def needles(identifiers: dict[str, str]) -> list[str]:
    """Each tag value, each part of a person name, and each date also as YYYY-MM-DD."""
    found = set()
    for key, value in identifiers.items():
        found.add(value)
        found.update(part for part in value.split("^") if part)
        if key.endswith("Date"):
            found.add(f"{value[:4]}-{value[4:6]}-{value[6:]}")
    return sorted(found)


def leaked(text: str | bytes, words: list[str]) -> list[str]:
    """The words found in ``text``, ignoring case."""
    haystack = text.lower() if isinstance(text, bytes) else text.lower().encode()
    return [w for w in words if w.lower().encode() in haystack]


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory):
    with AppProcess(tmp_path_factory.mktemp("privacy") / "home") as process:
        yield process


@pytest.fixture(scope="module")
def answers(app: AppProcess) -> dict[str, dict]:
    """Predict (opacity 0: the overlay is the image as read) and submit each identified DICOM."""
    client = app.client()
    out = {}
    for entry, label in zip(IDENTIFIED, ("malignant", "benign"), strict=True):
        path = str(BAD / entry["file"])
        _, overlay, details = client.predict(handle_file(path), "Grad-CAM", 0.0, api_name="/predict")
        client.predict(handle_file(path), api_name="/offer")  # kept in the label-next pool (not a case yet)
        receipt = client.predict(handle_file(path), label, notes="synthetic privacy test",
                                 api_name="/submit_case")
        report = Path(client.predict(handle_file(path), "Grad-CAM", 0.4, api_name="/report"))
        out[entry["file"]] = {"overlay": np.asarray(Image.open(overlay).convert("RGB")),
                              "details": details, "receipt": receipt, "report": report}
    out["models"] = client.predict(api_name="/models")
    return out


def test_the_uploads_really_carry_the_identifiers() -> None:
    assert len(IDENTIFIED) == 2
    for entry in IDENTIFIED:
        ds = pydicom.dcmread(BAD / entry["file"])
        for key, value in entry["identifiers"].items():
            assert str(ds.data_element(key).value) == value
        assert leaked((BAD / entry["file"]).read_bytes(), list(entry["identifiers"].values())) == \
            list(entry["identifiers"].values())


def test_no_identifier_in_any_file_under_mammo_home_or_the_log(app: AppProcess, answers: dict) -> None:
    words = needles(IDENTIFIED[0]["identifiers"])
    files = [p for p in sorted(app.home.rglob("*")) if p.is_file()]
    assert any(p.suffix == ".parquet" for p in files) and any(p.suffix == ".safetensors" for p in files)
    # the prediction log, the audit log and the label-next pool are searched too
    assert {"logs", "audit", "pending"} <= {p.relative_to(app.home).parts[0] for p in files}
    for path in files:
        assert not leaked(path.read_bytes(), words), path
    assert "Running on local URL" in app.log()  # the log read is the app's own
    assert not leaked(app.log(), words)
    assert not leaked(json.dumps(answers, default=str), words)  # nor in any API answer


@pytest.mark.parametrize("entry", IDENTIFIED, ids=lambda e: e["file"])
def test_the_pdf_report_carries_no_identifier(answers: dict, entry: dict) -> None:
    words = needles(entry["identifiers"])
    report = answers[entry["file"]]["report"]
    assert report.name.startswith("mammo-report-") and "identified" not in report.name
    pdf = PdfReader(report)
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert "Research and education only" in text and "Grad-CAM" in text  # it is the report
    assert "Models tab (version" in text and "/models/" not in text  # no path on the server either
    assert answers[entry["file"]]["details"]["image_sha256"] in text.replace("\n", "")
    assert not leaked(text, words) and not leaked(report.read_bytes(), words)
    assert not leaked(json.dumps({k: str(v) for k, v in (pdf.metadata or {}).items()}), words)
    assert "identified" not in text  # nor the upload's file name


def test_stored_cases_hold_the_pixels_and_nothing_identifying(app: AppProcess, answers: dict) -> None:
    words = needles(IDENTIFIED[0]["identifiers"])
    cases = CaseStore(LABELS, app.home / "cases").load()
    assert len(cases) == len(IDENTIFIED)
    strings = [name for name, feature in cases.features.items() if getattr(feature, "dtype", "") == "string"]
    assert {"case_id", "submitted_at", "notes"} <= set(strings)
    for name in strings:
        assert not leaked(" ".join(str(v) for v in cases[name]), words), name
    raw = cases.cast_column("image", datasets.Image(decode=False))
    by_id = {row["case_id"]: row for row in raw}
    for entry in IDENTIFIED:
        row = by_id[answers[entry["file"]]["receipt"]["case_id"]]
        assert row["image_sha256"] == sha256_of_pixels(read_image(BAD / entry["file"]))
        png = Image.open(io.BytesIO(row["image"]["bytes"]))
        assert png.format == "PNG" and not getattr(png, "text", {})  # no tEXt/zTXt/iTXt chunk
        assert not leaked(repr(png.info), words)


def _window(ds: pydicom.Dataset) -> np.ndarray:
    """The DICOM linear VOI window (PS3.3 C.11.2.1.2), min-max scaled, MONOCHROME1 inverted."""
    x = ds.pixel_array.astype(np.float64)
    center, width = float(ds.WindowCenter), float(ds.WindowWidth)
    y = np.clip((x - (center - 0.5)) / (width - 1) + 0.5, 0, 1)
    y = (y - y.min()) / (y.max() - y.min())
    return 1 - y if ds.PhotometricInterpretation == "MONOCHROME1" else y


@pytest.mark.parametrize("entry", IDENTIFIED, ids=lambda e: e["file"])
def test_predict_applies_the_window_and_inverts_monochrome1(answers: dict, entry: dict) -> None:
    ds = pydicom.dcmread(BAD / entry["file"])
    expected = 255 * _window(ds)
    shown = answers[entry["file"]]["overlay"].astype(np.float64)
    assert shown.shape == (ds.Rows, ds.Columns, 3)
    # opacity 0: the image as read, through the overlay's JPEG (lossy: a few grey levels on average)
    assert np.abs(shown[..., 0] - expected).mean() <= 4
    raw = ds.pixel_array.astype(np.float64)
    unwindowed = 255 * (raw - raw.min()) / (raw.max() - raw.min())
    if ds.PhotometricInterpretation == "MONOCHROME1":
        unwindowed = 255 - unwindowed
    assert np.abs(unwindowed - expected).mean() > 20  # the window matters for this file
    assert np.abs((255 - expected) - expected).mean() > 50  # and so does the inversion
    assert answers[entry["file"]]["details"]["label"] in LABELS
