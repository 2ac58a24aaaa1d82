"""What the Predict tab shows of a prediction: the verdict, the score and its cut-off, the heat map's key, the
uncertainty, a known image, the session's history."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from ..choices import LESION_MAP
from ._common import literal, percent

__all__ = ["HISTORY_COLUMNS", "score_text", "cut_off_text", "flag_headline", "HEATMAP_COLOURS",
           "heatmap_colour_bar", "heatmap_key", "uncertainty_text", "history_row", "known_image_notes",
           "known_image_text", "unreadable_text"]


HISTORY_COLUMNS = ["file", "most likely", "malignancy score (%)", "flagged for review", "model", "note"]


def _flag_words(flagged: bool | None) -> str:
    """The review flag in words, as the headline and the paragraph under it both say it."""
    return "Flagged for review" if flagged else "Not flagged"


def score_text(details: Mapping[str, Any]) -> str:
    """The malignancy score and the review flag in words that cannot contradict the most likely class.

    ``malignancy_score`` and ``threshold`` are both on the 0-100 scale of the details.
    """
    score, threshold = details.get("malignancy_score"), details.get("threshold")
    if score is None:
        return "This model has no *malignant* class, so it gives no malignancy score."
    kind = ("a calibrated probability: of 100 films scored like this, about that many were malignant "
            "in the data it was calibrated on" if details.get("calibrated") else "not calibrated")
    text = f"**Malignancy score: {percent(score)}** (model {details['model_version']}; {kind})."
    if threshold is None:
        return text + " This model records no review cut-off. Research use only: not a diagnosis."
    verdict = f"**{_flag_words(details.get('above_threshold'))}**"
    low = " So low a cut-off flags most films, normal ones too." if threshold < 10 else ""
    return (f"{text} {verdict} at this model's review cut-off of {percent(threshold)}: "
            f"{cut_off_text(details.get('cut_off'))}{low} "
            "The flag is separate from the most likely class above: a film can be most likely "
            "normal and still be flagged. Research use only: not a diagnosis.")


_CUT_OFF_SET_ON = {
    "out of fold": "the score at which it caught 90% of the malignant films of patients it had not "
                   "trained on (cross-validation).",
    "validation": "the score at which it caught 90% of the malignant films of its validation patients "
                  "(not trained on, but they chose the cut-off, so it flatters the model).",
    "validation it had learnt": "set to catch 90% of the malignant films of its validation patients, "
                                "whom the model it was retrained from had learnt: optimistic, so on new "
                                "patients it may catch far fewer.",
    "validation it may have learnt": "set to catch 90% of the malignant films of its validation patients, "
                                     "whom the model it was retrained from may have learnt (it records no "
                                     "list): perhaps optimistic.",
}


def cut_off_text(cut_off: Mapping[str, Any] | None) -> str:
    """How a model's review cut-off was set and what its flag did on held-out patients, in words
    (``predict.cut_off_record``)."""
    if not cut_off:
        return "the score chosen in training to catch 90% of the malignant films."
    text = _CUT_OFF_SET_ON[cut_off["set_on"]]
    flagged, malignant = cut_off.get("held_out_flagged"), cut_off.get("held_out_malignant")
    if malignant:
        text += f" On held-out patients it flagged {flagged} of {malignant} malignant films."
    return text


def flag_headline(details: Mapping[str, Any]) -> str:
    """The headline over a result: the review flag and the score it rests on, so that the most likely
    class (a film is usually most likely normal) is not read as the verdict; empty for a model
    without a malignant class."""
    score, threshold = details.get("malignancy_score"), details.get("threshold")
    if score is None:
        return ""
    if details.get("not_like_a_film"):  # a flag over a photograph would read as a finding
        flag = "" if threshold is None else " and review flag"
        return (f"### Not like a mammogram: its malignancy score ({percent(score)}){flag} mean"
                f"{'' if flag else 's'} little (the note below says why)")
    if threshold is None:
        return f"### Malignancy score {percent(score)} (this model records no review cut-off)"
    return (f"### {_flag_words(details.get('above_threshold'))}: malignancy score {percent(score)}, "
            f"review cut-off {percent(threshold)}")


# the overlay's colour map (OpenCV's jet, mammo.explain.overlay) at a few of its values: (value, RGB);
# the overlay is blended in as strongly as the value is, so the key's colours fade out towards 0
HEATMAP_COLOURS = ((0.0, (0, 0, 128)), (0.125, (0, 0, 255)), (0.375, (0, 255, 255)), (0.625, (255, 255, 0)),
                   (0.875, (255, 0, 0)), (1.0, (128, 0, 0)))


def heatmap_colour_bar(low: str, high: str) -> str:
    """The heat map's colours as a bar between two words, over a film's dark grey (inline HTML in a
    Markdown line; the words beside it say the same for a screen reader)."""
    stops = ", ".join(f"rgba({r}, {g}, {b}, {value:g}) {100 * value:g}%"
                      for value, (r, g, b) in HEATMAP_COLOURS)
    return (f'Key: {html.escape(low)} <span style="display: inline-block; width: 12em; height: 0.9em; '
            f'vertical-align: middle; background: linear-gradient(to right, {stops}), #3a3a3a;"></span> '
            f'{html.escape(high)}')


def heatmap_key(details: Mapping[str, Any], asked: str | None = None) -> str:
    """What the heat map's colours mean for the method that drew it (empty when none was drawn), first
    saying why it is not the method ``asked`` for (a model without a lesion map draws Grad-CAM: a walk
    read "Lesion map" in the box over a Grad-CAM map)."""
    method = details.get("heatmap_method")
    if not method:
        return ""
    if asked and asked != method:
        return (f"*{details.get('model_version') or 'The served model'} has no {asked}: {method} is drawn "
                f"instead.*\n\n" + heatmap_key(details))
    if method == LESION_MAP:
        return (f"**Heat map ({method}):** the model's probability that a patch of tissue holds a lesion "
                "(benign or malignant), on one scale for every film: blue low, red high, no colour where "
                "it is near 0 or outside the breast. Colours can be compared between films.\n\n"
                + heatmap_colour_bar("0", "1"))
    # EigenCAM draws the first principal component of the last feature map: no class enters it
    what = ("the strongest pattern of the network's last features (for no class in particular)"
            if method == "EigenCAM" else
            f"where the network's evidence for the most likely class (*{details.get('label')}*) lies")
    flagged_other = (details.get("above_threshold") and method != "EigenCAM"
                     and details.get("label") != "malignant")
    # said first, in bold: a walk read a flagged film's red spot as the suspicious area, the words below
    hint = (f"**This film is flagged for review while its most likely class is {details.get('label')}: the "
            "map shows the evidence for that class, not for the flag.** The Lesion map (where the model "
            "has one) shows where lesions are likely.\n\n" if flagged_other else "")
    return (f"{hint}**Heat map ({method}):** {what}, scaled within this image: red marks this film's "
            "strongest region however weak it is, so colours cannot be compared between films or with the "
            "lesion map. A model with a lesion map reads only the breast's patches, and its CAM is drawn "
            "only there.\n\n" + heatmap_colour_bar("weakest", "strongest in this film"))


def uncertainty_text(details: Mapping[str, Any]) -> str:
    """How much the prediction moves when the film is mirrored, with a note when that is a lot."""
    uncertainty = details.get("uncertainty")
    if not uncertainty:
        return ""
    spread = uncertainty["spread"]
    text = (f"**Uncertainty: {spread:.1f} points.** Scored again upside down (its vertical mirror image), "
            f"the film's class probabilities move by up to {spread:.1f} percentage points.")
    if uncertainty.get("high"):
        text += (" **That is high**: the model is unsure about this film; read its scores with extra "
                 "caution.")
    return text


def history_row(name: str, details: Mapping[str, Any]) -> list[Any]:
    """A prediction as a row of this session's table; its note says why a score is not a fresh one
    (not like a film, a film the model learnt from, a stored case) or is unsure (a high uncertainty)."""
    flagged = details.get("above_threshold")
    score = details.get("malignancy_score")
    stored = f"stored case ({details.get('stored_label') or 'label unknown'})"
    notes = ["not like a mammogram" if details.get("not_like_a_film") else "",
             "a film it learnt from" if details.get("in_training_data") else "",
             stored if details.get("stored_case") else "",
             "high uncertainty" if (details.get("uncertainty") or {}).get("high") else ""]
    return [name, details["label"], "—" if score is None else f"{score:.1f}",  # as the headline: 9.0, not 9
            "—" if flagged is None else ("yes" if flagged else "no"), details["model_version"],
            "; ".join(n for n in notes if n) or "—"]


def known_image_notes(details: Mapping[str, Any]) -> str:
    """Why this image's score is not a fresh one, in words ("" when it is): an image unlike a film,
    a film the model learnt from, or a case already stored."""
    notes = []
    if details.get("not_like_a_film"):
        notes.append("this image does not look like a whole-breast mammogram "
                     f"({details['not_like_a_film']}); the model learnt from such films only, so its scores "
                     "here mean little")
    if details.get("in_training_data"):
        notes.append(f"this image is one of the films model {details['model_version']} was trained "
                     "(or validated) on, so its score says nothing about how the model does on new films")
    if details.get("stored_case"):
        label = f", confirmed **{details['stored_label']}**" if details.get("stored_label") else ""
        notes.append(f"this image is already in the case store (case `{details['stored_case']}`{label})")
    return "; ".join(notes)


def known_image_text(details: Mapping[str, Any]) -> str:
    """:func:`known_image_notes` as a warning for the page."""
    notes = known_image_notes(details)
    return f"⚠️ **Note:** {notes}." if notes else ""


def unreadable_text(why: str) -> str:
    """Why the file in the Predict box cannot be read, beside it for as long as it is there."""
    return f"**This file cannot be read.** {literal(why)}"
