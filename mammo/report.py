"""A one-page PDF report of one prediction (fpdf2): image and heat map, scores, model, disclaimer.

Nothing that could identify a patient goes in: no file name, no DICOM tag, no case metadata; the
image is the decoded pixels at display size and is named only by the SHA-256 of its pixels.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
from fpdf import FPDF
from PIL import Image

from . import views
from .config import DISCLAIMER
from .predict import Prediction

__all__ = ["prediction_report"]

log = logging.getLogger(__name__)

# fpdf2's built-in fonts are Latin-1: the few other characters mammo's texts use, spelled out
_LATIN1 = str.maketrans({"–": "-", "—": "-", "≥": ">=", "≤": "<=", "’": "'", "“": '"', "”": '"',
                         "●": "*", "…": "...", "⇣": ""})
_PAGE_WIDTH = 180.0  # A4 minus 15 mm margins
# the images' heights tried in turn (mm): a tall film with long notes ran onto a second page
_IMAGE_HEIGHTS = (110.0, 95.0, 80.0, 65.0)


def _plain(markdown: str) -> str:
    """Markdown emphasis removed, and Latin-1 only."""
    text = re.sub(r"\*\*?([^*]+)\*\*?", r"\1", markdown).replace("`", "")
    return text.translate(_LATIN1).encode("latin-1", "replace").decode("latin-1")


def _picture(pixels: np.ndarray) -> Image.Image:
    """A grey [0, 1] array or an RGB uint8 array as an image fpdf2 embeds."""
    if pixels.dtype != np.uint8:
        pixels = np.uint8(np.round(255 * np.clip(pixels, 0, 1)))
    return Image.fromarray(pixels)


def _images(pdf: FPDF, grey: np.ndarray, overlay: np.ndarray | None, method: str | None,
            tallest: float) -> None:
    """The image and its heat map side by side, each at most 88 mm wide and ``tallest`` mm tall, with
    captions."""
    height, width = grey.shape[:2]
    scale = min(88 / width, tallest / height)
    w, h = width * scale, height * scale
    top = pdf.get_y()
    pdf.image(_picture(grey), x=15, y=top, w=w, h=h)
    if overlay is not None:
        pdf.image(_picture(overlay), x=15 + _PAGE_WIDTH / 2 + 2, y=top, w=w, h=h)
    pdf.set_y(top + h + 1)
    pdf.set_font("helvetica", "I", 8)
    pdf.cell(_PAGE_WIDTH / 2 + 2, 4, "The image as read (display size)")
    pdf.cell(_PAGE_WIDTH / 2 - 2, 4, _plain(f"Heat map: {method}, over the image") if overlay is not None
             else "No heat map: this model draws none", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _heading(pdf: FPDF, text: str) -> None:
    pdf.set_font("helvetica", "B", 12)
    pdf.cell(0, 7, text, new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "", 9)


def _rows(pdf: FPDF, rows: list[tuple[str, str]]) -> None:
    for name, value in rows:
        pdf.set_font("helvetica", "B", 9)
        pdf.cell(55, 5, _plain(name))
        pdf.set_font("helvetica", "", 9)
        pdf.multi_cell(_PAGE_WIDTH - 55, 5, _plain(value), align="L", new_x="LMARGIN", new_y="NEXT")


def prediction_report(prediction: Prediction, grey: np.ndarray, model_config: Mapping[str, Any],
                      card_reference: str, generated_at: datetime) -> bytes:
    """The PDF of one prediction.

    Args:
        prediction: the prediction (its overlay drawn on ``grey``).
        grey: the image as read, at display size, in [0, 1].
        model_config: the predicting version's ``config.json`` (its card's figures).
        card_reference: where the version's model card is (a URL, or words; never a server path).
        generated_at: the report's time (UTC).
    """
    for tallest in _IMAGE_HEIGHTS:  # the tallest images that leave the report one page
        pdf = _report(prediction, grey, model_config, card_reference, generated_at, tallest)
        if pdf.page == 1:
            break
    else:
        log.warning("the prediction report runs onto %d pages, its images at %.0f mm", pdf.page, tallest)
    return bytes(pdf.output())


def _report(prediction: Prediction, grey: np.ndarray, model_config: Mapping[str, Any], card_reference: str,
            generated_at: datetime, tallest: float) -> FPDF:
    """:func:`prediction_report`'s PDF with images at most ``tallest`` mm tall."""
    details = prediction.details()
    mammo = model_config.get("mammo") or {}
    pdf = FPDF(format="A4")
    pdf.set_margins(15, 12, 15)
    pdf.set_auto_page_break(True, margin=12)
    pdf.set_title("mammo prediction report")
    pdf.set_creator("mammo")
    pdf.add_page()
    pdf.set_font("helvetica", "B", 16)
    pdf.cell(0, 9, "mammo - prediction report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("helvetica", "B", 9)
    pdf.set_text_color(160, 0, 0)
    pdf.multi_cell(0, 4.5, _plain(DISCLAIMER), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(0, 0, 0)
    pdf.ln(2)
    _images(pdf, grey, prediction.overlay, prediction.method, tallest)

    _heading(pdf, "Result")
    probabilities = ", ".join(f"{label} {views.percent(100 * p)}"
                              for label, p in prediction.probabilities.items())
    known = views.known_image_notes(details)
    _rows(pdf, [("Most likely class", prediction.label), ("Probabilities", probabilities),
                ("Malignancy score and flag", views.score_text(details)),
                ("Uncertainty", views.uncertainty_text(details) or "not measured"),
                ("Heat-map method", prediction.method or "none"),
                *([("Note", f"{known[0].upper()}{known[1:]}.")] if known else [])])
    pdf.ln(2)
    _heading(pdf, "Model")
    _rows(pdf, [("Version", prediction.model_version), ("Estimated performance", views.estimate_text(mammo)),
                ("Model card", card_reference)])
    pdf.ln(2)
    _heading(pdf, "About this report")
    _rows(pdf, [("Generated", f"{generated_at:%Y-%m-%d %H:%M:%S} UTC"),
                ("Image fingerprint", f"SHA-256 of the pixels: {prediction.image_sha256}"),
                ("Privacy", "No file name, DICOM tag or case metadata is included.")])
    return pdf
