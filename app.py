"""mammo Space: a Gradio Blocks UI that wires events to ``mammo.service`` and the texts of
``mammo.views``; what it does itself is which component shows what, and when.

API names (``gradio_client``): /predict, /heatmap, /report, /submit_case, /correct_label,
/withdraw_case, /retrain, /rollback, /models, /audit, /history, /offer, /queue, /health (also
GET /health). Run: ``python app.py``.
"""

import asyncio
import atexit
import functools
import inspect
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from fastapi import Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from gradio.route_utils import FnIndexInferError
from gradio.utils import get_upload_folder
from huggingface_hub import ModelCard

from mammo import analytics, views
from mammo.access import AccessDenied, TokenUsers, can_submit, can_train
from mammo.choices import DEFAULT_METHOD, DEFAULT_OPACITY, HEATMAP_METHODS, WITHDRAWAL_REASONS, listed_method
from mammo.config import DISCLAIMER, settings
from mammo.errors import MammoError, SettingsError
from mammo.glossary import glossary_markdown
from mammo.imaging import SUPPORTED, dicom_view, encode_png, read_image
from mammo.predict import DISPLAY_SIDE, OVERLAY_FORMAT, Prediction
from mammo.preprocess import fit_within
from mammo.retraining import TRAINING_BEGINS, PublishedNotServed, RetrainBusy, RetrainOptions
from mammo.service import SUBMISSIONS_CHECKED_AFTER_S, MammoService
from mammo.store import HubUnavailable
from mammo.store.cases import METADATA_FIELDS
from mammo.ui.browser_steps import (
    CLAMP_OPACITY_JS,
    CLICK_PREDICT_JS,
    CLICK_PREDICT_PICKED_JS,
    DESELECT_JS,
    HINT_OF_THE_FILE_JS,
    OFFER_OF_THE_FILE_JS,
    OPACITY_RANGE,
    PAGE_JS,
    PREVIEW_OF_THE_FILE_JS,
    REDRAW_CLAMPED_JS,
    SAME_FILE_JS,
    SCROLL_TO_RESULT_JS,
    hide_js,
    on_with_a_file_js,
    submitted_js,
    visibility_js,
)
from mammo.ui.charts import (
    SOURCE_COLOURS,
    auc_plot,
    counted_room,
    figures_tables,
    give_room,
    loss_plot,
    losses_shown,
    recolour,
    shown_if_any,
)
from mammo.ui.events import CHAINED, on_again_if_failed, pressed_once, turn_on
from mammo.ui.gallery import EXAMPLES_FOLDER, PHANTOMS, REAL_FILMS, film_caption
from mammo.ui.look import (
    COMPARISON_LAYOUT,
    CONFUSION_COUNTS,
    FEW_FILMS_A_BIN,
    HEATMAP_FILE_EXPLAINED,
    NO_FILE_HINT,
    OFFER_EXPLAINED,
    PAGE_CSS,
    PAGE_THEME,
    PLOT_MIN_WIDTH,
)
from mammo.ui.refusals import CLEAR_ERRORS, clear_errors, refusal, refusal_text, refused_as_receipt
from mammo.ui.widgets import (
    CHECKED_HERE,
    download_box,
    empty_value,
    in_bounds,
    mammogram_file,
    metadata_input,
)
from mammo.uploads import own_upload_folder
from mammo.values import echoed

log = logging.getLogger("mammo.app")


torch.set_num_threads(1)  # one thread per worker: more spin-wait on small CPU boxes (docs/architecture.md)
try:
    SETTINGS = settings()
except SettingsError as error:  # a MAMMO_* variable it cannot use: said in one line, as the CLI says it
    sys.exit(f"error: {error}")
# visitors' files (a DICOM's tags and all) in a folder of this run's own: a run killed before it could
# delete them has them deleted by the next start (Gradio deletes only its own run's); by its full path
# (a relative GRADIO_TEMP_DIR spelt an upload's path two ways, and the page showed no result beside it)
os.environ["GRADIO_TEMP_DIR"] = str(own_upload_folder(Path(get_upload_folder()).resolve()))
try:
    service = MammoService(SETTINGS, check_submissions_after=SUBMISSIONS_CHECKED_AFTER_S)
except MammoError as error:  # no store or model to serve (a new disk while the Hub is down): one line
    sys.exit(f"error: {error}")
token_users = TokenUsers(SETTINGS)  # API callers' tokens -> Hub user names (whoami, cached)


def _user(profile: gr.OAuthProfile | None, token: gr.OAuthToken | None = None, *,
          needed: bool = True) -> str | None:
    """Who is asking: the signed-in browser user, else the owner of the token an API caller passed
    with ``gradio_client.Client(..., oauth_token=...)`` (checked with the Hub), else nobody. A token
    the Hub cannot check now is refused in words (HubUnavailable), unless the user is not ``needed``
    (only to file a prediction in their history): then nobody, logged, and the prediction is made."""
    if profile is not None:
        return profile.username
    try:
        return token_users.user(token.token if token is not None else None)
    except HubUnavailable:
        if needed:
            raise
        return None


def _download(name: str, content: bytes | str) -> str:
    """``content`` as a file called ``name`` in a fresh folder of Gradio's upload folder, for a gr.File
    output: Gradio serves it from there as it is, and deletes it with the uploads (MAMMO_KEEP_FILES_HOURS;
    a folder elsewhere would be copied there and itself kept for good)."""
    folder = Path(get_upload_folder())
    folder.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(prefix="mammo-", dir=folder)) / name
    if isinstance(content, str):
        path.write_text(content)
    else:
        path.write_bytes(content)
    return str(path)


def _utc_stamp() -> str:
    """The UTC time for a download's name (never the upload's name: it may carry a patient's)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime())


def _need_file(path: str | None, named: bool = False) -> str:
    """The uploaded file's path, or a refusal that says what to do: none was uploaded, or it was
    deleted since (the page still names it): kept longer than the app keeps files, or the app restarted.
    ``named``: the refusal names the file (one of several)."""
    if not path:
        raise gr.Error("Upload an image first.")
    if not Path(path).is_file():
        hours = SETTINGS.keep_files_hours
        raise gr.Error(f"{Path(path).name + ' is' if named else 'This file is'} no longer on the server "
                       f"(uploads are kept for {hours:g} hour{'' if hours == 1 else 's'}, and not past a "
                       "restart of the app). Upload it again.")
    return path


def _method(method: str | None) -> str:
    """The heat-map method asked for, in any case; the default when an API caller sends none (null)."""
    return DEFAULT_METHOD if method is None else listed_method(str(method))


# -- Predict ---------------------------------------------------------------------------------------
@clear_errors
def predict(image: str | None, method: str = DEFAULT_METHOD, opacity: float = DEFAULT_OPACITY,
            profile: gr.OAuthProfile | None = None,
            token: gr.OAuthToken | None = None) -> tuple[dict, np.ndarray, dict]:
    """One mammogram file (DICOM, PNG 8 or 16-bit, JPEG, TIFF, PGM/PNM or BMP) -> class probabilities,
    the heat-map overlay (JPEG, the image's shape, longer side at most 2048 px; /heatmap gives the map
    at full size), and details: model version, malignancy score and the review cut-off (both 0-100), whether
    it is flagged, the heat-map method, and whether the image is a training film or a stored case.
    Research use only."""
    result = _prediction(image, method, opacity, profile, token)
    return result.probabilities, result.overlay, result.details()


def _prediction(image: str | None, method: str, opacity: float, profile: gr.OAuthProfile | None,
                token: gr.OAuthToken | None) -> Prediction:
    """A new prediction of the uploaded file, logged with its caller."""
    return service.predict(_need_file(image), method=_method(method), opacity=opacity,
                           user=_user(profile, token, needed=False))


@clear_errors
def predict_shown(image: str | None, method: str, opacity: float, shown_for: str | None,
                  profile: gr.OAuthProfile | None = None, token: gr.OAuthToken | None = None):
    """The Predict tab's prediction (probabilities, heat map, details), its words (score, uncertainty)
    and rounded details, and the file it is for: one step, so the words beside a result are its own.
    Predict clicked again for the file whose result the page has (``shown_for``) draws that result
    again, not logged again (the session's history keeps one row for it too)."""
    again = service.rerender(image, _method(method), opacity) if image and image == shown_for else None
    return result_views(again or _prediction(image, method, opacity, profile, token), image, _method(method))


def _preview_or_why(image: str) -> tuple[np.ndarray | None, str | None]:
    """The uploaded file as it will be read (DICOM and 16-bit PNG included), or why it cannot be (as an
    error, Gradio would leave a bare "Error" badge in the preview for good)."""
    try:
        return _shown(service.load(image).grey), None
    except CLEAR_ERRORS as error:
        return None, refusal("preview", error).message


@clear_errors
def preview(image: str | None):
    """The Submit tab's image as it will be read, before it is submitted. A file that cannot be read is
    said in a toast (Submit refuses it too) and the preview stays empty."""
    if not image:
        return None
    picture, why = _preview_or_why(image)
    if why:
        gr.Warning(why, duration=15)
    return picture


@clear_errors
def predict_preview(image: str | None):
    """The Predict tab's preview, and for a file that cannot be read, why, on the page beside it (not
    only in a toast that goes: a walk found the tab then showing nothing but the Offer button): the
    preview, the message, the Offer button with its note, or why an image has nothing to label (a
    stored case, a film the model learnt from: a walk offered a stored case, to be refused only then)
    in their place, and the file they are for (a browser step shows them only beside it)."""
    if not image:
        return None, "", *(gr.skip(),) * 3, ""
    picture, why = _preview_or_why(image)
    not_to_label = None if why else _nothing_to_label(image)
    return (picture, views.unreadable_text(why) if why else "",
            gr.update(visible=not not_to_label), gr.update(visible=not not_to_label),
            gr.update(value=not_to_label or "", visible=bool(not_to_label)), image)


def _nothing_to_label(image: str) -> str | None:
    """Why the image has nothing to label, if the stores say so now; None too when they cannot be read
    (logged): the preview is still shown, and an Offer click asks them again."""
    try:
        return service.offer_refusal(image)
    except Exception:  # noqa: BLE001 - a preview does not fail for the Offer button's sake
        log.exception("the Predict preview could not tell whether the image has anything to label")
        return None


def _shown(grey: np.ndarray) -> np.ndarray:
    """A [0, 1] greyscale image as the 8-bit picture a preview shows, at display size (a stored
    12-megapixel film is not sent whole)."""
    return np.uint8(np.round(255 * fit_within(grey, DISPLAY_SIDE)))


@clear_errors
def heatmap_file(image: str | None, method: str = DEFAULT_METHOD) -> str:
    """The heat map of one mammogram file at the file's full resolution, as a 16-bit greyscale PNG
    (value / 65535 = the map's 0-1: for the Lesion map each position's uncalibrated patch P(lesion), for
    the CAMs relative, 1 = the strongest in the film); the same map /predict draws at display size."""
    full = service.full_heatmap(_need_file(image), _method(method)).full_heatmap()
    if full is None:
        raise gr.Error("This model draws no heat map.")
    return _download(f"mammo-heatmap-{_utc_stamp()}.png", encode_png(full))


def heatmap_shown(image: str | None, method: str):
    """The Predict tab's full-size heat map, and the file it is for."""
    return heatmap_file(image, method), image


@clear_errors
def report_file(image: str | None, method: str = DEFAULT_METHOD, opacity: float = DEFAULT_OPACITY,
                profile: gr.OAuthProfile | None = None, token: gr.OAuthToken | None = None) -> str:
    """A one-page PDF report of one mammogram's prediction: the image and its heat map side by side,
    the probabilities, the malignancy score with the review cut-off and what it means, the model
    version with its estimated performance and where its card is, the heat-map method, the UTC time
    and the disclaimer. No file name, DICOM tag or metadata goes in. Research use only."""
    pdf = service.report(_need_file(image), _method(method), opacity,
                         user=_user(profile, token, needed=False))
    return _download(f"mammo-report-{_utc_stamp()}.pdf", pdf)


def report_shown(image: str | None, method: str, opacity: float, profile: gr.OAuthProfile | None = None,
                 token: gr.OAuthToken | None = None):
    """The Predict tab's report, and the file it is for."""
    return report_file(image, method, opacity, profile, token), image


@clear_errors
def redraw(image: str | None, method: str, opacity: float):
    """The last prediction of this file drawn with another method or opacity (no new upload), and
    the file it is for."""
    result = service.rerender(image, _method(method), opacity) if image else None
    if result is None:  # nothing predicted for this file yet: Predict draws it
        return (gr.skip(),) * 7
    return result_views(result, image, _method(method))


def result_views(result: Prediction, image: str, asked: str):
    """What the page shows of a drawn prediction of ``image`` with the heat-map method ``asked`` for (as
    ``predict_shown`` returns it)."""
    details = result.details()
    return result.probabilities, result.overlay, details, *show_details(details, asked), image


@clear_errors
def offer(image: str | None, profile: gr.OAuthProfile | None = None,
          token: gr.OAuthToken | None = None) -> str:
    """Offer an uploaded image for labelling (your explicit consent): it is kept, re-encoded without
    file name or DICOM tags, in the "label next" pool until a clinician labels it as a case or
    removes it; nothing trains on it before. Returns what was kept."""
    return views.offer_text(service.offer_for_labelling(_need_file(image), user=_user(profile, token)))


def offer_shown(image: str | None, profile: gr.OAuthProfile | None = None,
                token: gr.OAuthToken | None = None):
    """The Predict tab's offer: its note, and the file it is for."""
    return offer(image, profile, token), image


@clear_errors
def queue(profile: gr.OAuthProfile | None = None, token: gr.OAuthToken | None = None) -> list:
    """The "label next" pool for submitters: images offered for labelling, the most uncertain first,
    each with its id, when it was offered, the uncertainty (0-100), the malignancy score, the most
    likely class and the model version. No image and no identifier."""
    return service.pending_images(user=_user(profile, token))


def queue_views(picked: str | None = None, profile: gr.OAuthProfile | None = None,
                token: gr.OAuthToken | None = None):
    """The pool's table and choices (the image ``picked`` stays picked while it waits), or a note when
    the visitor may not see it."""
    try:
        entries = service.pending_images(user=_user(profile, token))
    except AccessDenied as denied:
        return [], gr.update(choices=[], value=None), str(denied)
    kept = picked if picked in {e["id"] for e in entries} else None
    return (views.queue_rows(entries), gr.update(choices=views.queue_choices(entries), value=kept),
            views.queue_note(entries))


@clear_errors
def pending_preview(pending_id: str | None, profile: gr.OAuthProfile | None = None,
                    token: gr.OAuthToken | None = None):
    if not pending_id:
        return None
    return _shown(read_image(service.pending_png(pending_id, user=_user(profile, token))))


@clear_errors
def label_pending(pending_id: str | None, label: str | None, profile: gr.OAuthProfile | None = None,
                  token: gr.OAuthToken | None = None):
    if not pending_id or not label:  # a toast, not an error badge over the dropdowns
        gr.Warning("Pick a pending image and its confirmed label first.")
        return gr.skip(), gr.skip()
    receipt = service.label_pending(pending_id, label, None, user=_user(profile, token))
    return views.pending_stored_text(receipt), None  # the label is emptied: the next image needs its own


@clear_errors
def remove_pending(pending_id: str | None, profile: gr.OAuthProfile | None = None,
                   token: gr.OAuthToken | None = None):
    if not pending_id:  # a toast, not an error badge over the last receipt
        gr.Warning("Pick the pending image to remove.")
        return gr.skip()
    service.remove_pending(pending_id, user=_user(profile, token))
    return f"`{pending_id[:12]}` was removed from the pool (it was never a case)."


def predict_image(path: str | None):
    """The Predict tab's file for the Submit case tab; the image there is kept when Predict has none."""
    if not path:
        gr.Warning("The Predict tab has no image: upload one there first, or here.")
        return gr.skip()
    return path


def pick_film(selected: gr.SelectData) -> str:
    """The gallery film clicked, as the Predict input."""
    return str(REAL_FILMS[selected.index])


def pick_phantom(sample: list[str] | None):
    """The synthetic phantom clicked (its file name), as the Predict input."""
    chosen = {p.name: p for p in PHANTOMS}.get(sample[0] if sample else None)
    return str(chosen) if chosen else gr.skip()


def show_details(details: dict, asked: str | None = None):
    """The headline over a result (the review flag), the words beside it (a known image, the score,
    the uncertainty, the heat map's key, with why it is not the method ``asked`` for) and its rounded
    details."""
    notes = [views.known_image_text(details), views.score_text(details), views.uncertainty_text(details),
             views.heatmap_key(details, asked)]
    return views.flag_headline(details), "\n\n".join(n for n in notes if n), views.rounded(details)


def add_history(image: str | None, result_file: str | None, details: dict, history: list):
    """This session's history with the prediction of ``result_file`` added, if it is still the file
    in the upload box (``image``) and not the row just added (Predict clicked twice: run twice, one row)."""
    row = views.history_row(Path(image or "?").name, details)
    if image != result_file or (history and history[-1] == row):
        return gr.skip(), gr.skip()
    history = [*history, row]
    return history, history


def recent_cases():
    """The 20 latest cases (id, label now, day) for the two case pickers: Predict's and the correction's."""
    choices = views.case_choices(service.cases.recent(20))
    return gr.update(choices=choices), gr.update(choices=choices)


@clear_errors
def case_file(case_id: str | None, profile: gr.OAuthProfile | None = None,
              token: gr.OAuthToken | None = None):
    """A submitted case's stored PNG, named by its case id, for the image input; the gallery's film
    no longer highlighted."""
    if not case_id:  # a toast, not an error badge over the upload box
        gr.Warning("Pick a case first.")
        return gr.skip(), gr.skip()
    can_submit(_user(profile, token), SETTINGS).require()  # cases are visible to those who may add them
    return _download(f"case-{case_id}.png", service.case_png(case_id)), gr.update(selected_index=None)


# -- Submit case ------------------------------------------------------------------------------------
@clear_errors
def submit_case(image: str | None, label: str | None, view: str | None = None, laterality: str | None = None,
                density: str | None = None, birads: int | None = None,
                biopsy_confirmed: bool | str | None = None, age: str | None = None, notes: str = "",
                profile: gr.OAuthProfile | None = None,
                token: gr.OAuthToken | None = None) -> dict:
    """Append one labelled case (image + confirmed label + optional metadata; empty fields are stored
    as empty) to the dataset; returns the receipt with the case id, what was stored and the totals."""
    if not label:
        raise gr.Error("Upload an image and pick its confirmed label first." if not image else
                       "Pick the confirmed label first.")
    metadata = views.metadata_from_fields(
        view=view, laterality=laterality, density=density, birads=birads,
        biopsy_confirmed=biopsy_confirmed, age=age, notes=notes)
    return service.submit(_need_file(image), label, metadata, user=_user(profile, token))


if list(inspect.signature(submit_case).parameters)[2:-2] != list(METADATA_FIELDS):
    raise RuntimeError("submit_case's metadata parameters must follow METADATA_FIELDS")


def from_the_header(image: str | None, filled: dict | None, *given: str | None):
    """A DICOM's breast side and view, as its header states them, in the Submit form
    (:func:`views.header_fill`; its tags are not stored), the metadata opened to show them. Returns the
    fields, the metadata's accordion and what the header filled in now (``filled``)."""
    fill = _header_fill(image, filled or {}, given)
    if fill.info:
        gr.Info(fill.info)
    if fill.warning:
        gr.Warning(fill.warning)
    opened = gr.Accordion(open=True) if fill.filled_in or fill.differ else gr.skip()
    kept = gr.skip()
    return (*(fill.set_to.get(name, kept) for name in views.HEADER_FIELDS), opened, fill.filled)


def against_the_header(image: str | None, *given: str | None) -> None:
    """A side or view picked by hand that the form's DICOM header contradicts, warned of at once: only
    the receipt said it, after the case was stored (a walk)."""
    fill = _header_fill(image, {}, given)
    if fill.warning:
        gr.Warning(fill.warning)


def _header_fill(image: str | None, filled: dict, given: tuple) -> views.HeaderFill:
    """:func:`views.header_fill` of the form's file's header, ``filled`` and the side and view ``given``."""
    return views.header_fill(dicom_view(image) if image else {}, filled,
                             dict(zip(views.HEADER_FIELDS, given, strict=True)))


_submit_case_receipt = refused_as_receipt(submit_case)


# submit_case's own parameters (its __wrapped__), so that Gradio passes the signed-in visitor (profile,
# token) as it does to submit_case: it fills only positional parameters, and keyword-only ones after
# *args get nothing
@functools.wraps(submit_case)
def submit_case_shown(*args, **kwargs) -> tuple[dict, str | None]:
    """:func:`submit_case` for the page (:func:`refused_as_receipt`), and the file it was sent, so that
    one put in meanwhile is not emptied with the form (:func:`after_submit`). The page sends no form
    without an image: its button is off until one is in."""
    return _submit_case_receipt(*args, **kwargs), (args[0] if args else kwargs.get("image"))


def after_submit(receipt: dict, sent: str | None, now: str | None):
    """The receipt in words, and the form emptied for the next case; a refused one's reason, the form
    kept to be put right. A file put in while the case was being stored (``now``, not ``sent``) stays,
    its label and metadata emptied to be filled in for it: it was emptied with the form (a review)."""
    if "refused" in receipt:
        return (views.refused_text(receipt["refused"]), *(gr.skip() for _ in range(2 + len(METADATA_FIELDS))))
    kept = now is not None and now != sent
    if kept:
        gr.Info("The case is stored. The file put in meanwhile stays in the form: pick its label.")
    return (views.receipt_text(receipt, METADATA_FIELDS), gr.skip() if kept else None, None,
            *(empty_value(f) for f in METADATA_FIELDS.values()))


@clear_errors
def submit_bulk(files: list[str] | None, label: str | None, profile: gr.OAuthProfile | None = None,
                token: gr.OAuthToken | None = None) -> dict:
    """Append several images (one label) or a zip of <label>/<file> folders as one batch."""
    kept = [_need_file(file, named=True) for file in files or []]  # none deleted since the page named it
    return service.submit_uploads(kept, label, user=_user(profile, token))


submit_bulk_shown = refused_as_receipt(submit_bulk)


def bulk_after(receipt: dict):
    """A bulk upload's receipt in words, and its files out of the box once the batch was taken (the
    next upload was added to them); a refused batch keeps its files, to be sent again."""
    return views.bulk_receipt_text(receipt), gr.skip() if "refused" in receipt else None


@clear_errors
def correct_label(case_id: str | None, label: str | None, profile: gr.OAuthProfile | None = None,
                  token: gr.OAuthToken | None = None) -> dict:
    """Change a stored case's confirmed label (``case_id`` as in its receipt, or its first 8 or more
    characters when they name one case; ``label`` one of the label set); returns the correction's
    receipt: the case, its label now and before, the totals."""
    named = bool(case_id and str(case_id).strip())
    if not named or not label:  # what is missing, by name (the form keeps the case after a correction)
        raise gr.Error("Pick the case and its correct label first." if not named and not label else
                       "Pick the case first." if not named else "Pick the correct label first.")
    return service.correct_label(str(case_id), label, user=_user(profile, token))


def _withdrawal_asked(case_id: str | None, reason: str | None) -> str:
    """The case id of a withdrawal's form, or a refusal naming what is missing."""
    if not case_id or not str(case_id).strip():
        raise gr.Error("Pick the case to withdraw first." if reason else
                       "Pick the case and the reason to withdraw it first.")
    if not reason:
        raise gr.Error("Pick the reason for the withdrawal first.")
    return str(case_id)


@clear_errors
def withdraw_case(case_id: str | None, reason: str | None, profile: gr.OAuthProfile | None = None,
                  token: gr.OAuthToken | None = None) -> dict:
    """Withdraw a stored case (``case_id`` as for /correct_label; ``reason`` one of the listed
    reasons): from now on it is left out of the counts, the case lists and every retrain, and its image
    is not shown; returns the withdrawal's receipt: the case, the label it had, the reason, the totals."""
    case_id = _withdrawal_asked(case_id, reason)
    return service.withdraw_case(case_id, str(reason), user=_user(profile, token))


@clear_errors
def ask_withdrawal(case_id: str | None, reason: str | None, profile: gr.OAuthProfile | None = None,
                   token: gr.OAuthToken | None = None):
    """The page's question before a withdrawal, which cannot be undone there: which case and why, and
    the two kept for the confirmation (what it withdraws, whatever the form says by then)."""
    case, label, listed = service.check_withdrawal(_withdrawal_asked(case_id, reason), str(reason),
                                                   user=_user(profile, token))
    return gr.update(visible=True), views.withdrawal_question(case, label, listed), [case, listed]


@clear_errors
def withdraw_asked(asked: list | None, profile: gr.OAuthProfile | None = None,
                   token: gr.OAuthToken | None = None):
    """The confirmed withdrawal: of the case and for the reason the question named."""
    if not asked:
        raise gr.Error("Ask again: pick the case and the reason, then Withdraw the case.")
    return withdraw_case(*asked, profile=profile, token=token)


def _receipt_of(case_id: str, submitted: dict | None) -> tuple:
    """The Submit tab's receipt (its words, its JSON) taken off the page when it is about ``case_id``,
    stored or refused as its image again, so that it does not say the label or state the case no longer
    has (a walk read "already submitted as case … (benign)" above "now malignant"); else left."""
    about = submitted and case_id in (submitted.get("case_id"), submitted.get("duplicate_of"))
    return ("", None) if about else (gr.skip(), gr.skip())


def after_correction(correction: dict, submitted: dict | None):
    """The correction in words, the label box emptied, and the receipt of this case off the page."""
    return views.correction_text(correction), None, *_receipt_of(correction["case_id"], submitted)


def after_withdrawal(withdrawal: dict, submitted: dict | None):
    """The withdrawal in words, the form emptied (the case is gone, so is its picture, and the
    question), and the receipt of this case off the page."""
    return (views.withdrawal_text(withdrawal), None, None, None, None, gr.update(visible=False),
            *_receipt_of(withdrawal["case_id"], submitted))


@clear_errors
def stored_case_preview(case_id: str | None, profile: gr.OAuthProfile | None = None,
                        token: gr.OAuthToken | None = None):
    """The stored image of the case picked for a correction. One that cannot be shown (no such case,
    not the visitor's to see) is said in a toast and the preview stays empty: as an error, Gradio
    would leave a bare "Error" badge in it."""
    if not case_id or not str(case_id).strip():
        return None
    try:
        can_submit(_user(profile, token), SETTINGS).require()  # cases are visible to those who may add them
        return _shown(read_image(service.case_png(service.cases.resolve_case(case_id))))
    except CLEAR_ERRORS as error:
        gr.Warning(refusal("case preview", error).message, duration=15)
        return None


def totals():
    """Images per label and source: the base data's films and the submitted cases (Retrain tab)."""
    return views.counts_frame(service.data_summary())


def submitted_totals():
    """Submitted cases per label (Submit case tab): without the base data's films, beside which a few
    cases would be a sliver that no submission or withdrawal visibly changes."""
    frame = totals()
    return frame[frame["source"] != "base"]


# -- Retrain ----------------------------------------------------------------------------------------
def _options(epochs: float, image_size: float | None, from_current: bool, user: str | None) -> RetrainOptions:
    """The retrain's options from the tab's values (an emptied image size, null, keeps the model's);
    a trainer is warned when the size is too small for the served recipe (the retrain still runs)."""
    options = RetrainOptions.from_form(epochs, image_size, from_current)
    warning = service.film_size_warning(options)
    # refused (not a trainer, or a retrain already runs): no warning before the refusal
    if warning and can_train(user, SETTINGS).allowed and not service.retrain_started:
        # long enough to read, not over the tab's plots for the whole run
        gr.Warning(f"{warning} The retrain runs as asked.", duration=30)
    return options


@clear_errors
def retrain(epochs: float = 5, image_size: float = 0, from_current: bool = True,
            profile: gr.OAuthProfile | None = None, token: gr.OAuthToken | None = None,
            progress=gr.Progress()) -> dict:  # noqa: B008
    """Fine-tune on the base data + submitted cases (trainers only). The candidate is published as the
    next version only if it is no worse on the fixed held-out patients; returns the summary with both
    models' metrics, `promoted`, the served `version` and the training history."""
    user = _user(profile, token)
    return service.retrain(_options(epochs, image_size, from_current, user), user=user,
                           progress=lambda f, m: progress(f, desc=m))


@clear_errors
def retrain_live(epochs: float, image_size: float, from_current: bool,
                 profile: gr.OAuthProfile | None = None,
                 token: gr.OAuthToken | None = None):
    """The Retrain button: the same retrain, with a status line (step, epoch, losses, AUC, time
    left) streamed next to the button while it runs; then the summary."""
    user = _user(profile, token)
    state: dict = {"fraction": 0.0, "message": "starting", "epoch": None}  # the run's progress
    try:
        yield from _retrain_streamed(_options(epochs, image_size, from_current, user), user, state)
    except CLEAR_ERRORS as error:  # said on the status line too, where it stays (a toast goes)
        if not isinstance(error, RetrainBusy):  # the running retrain's line says it already
            published = isinstance(error, PublishedNotServed)
            # its checks report 0, then it says training begins (a failure from there is no refusal)
            trained = state["fraction"] > 0 or state["message"] == TRAINING_BEGINS
            yield (views.retrain_failed_text(None, refusal_text(error), published=published, trained=trained),
                   gr.skip())
        raise


def _retrain_streamed(options: RetrainOptions, user: str | None, state: dict):
    """:func:`retrain_live`'s status lines, then its summary; ``state`` follows the run's progress."""
    done = threading.Event()

    def run() -> None:
        try:
            state["summary"] = service.retrain(
                options, user=user, progress=lambda f, m: state.update(fraction=f, message=m),
                on_epoch=lambda epoch: state.update(epoch=epoch, epoch_ended=time.monotonic()))
        except BaseException as error:  # noqa: BLE001 - re-raised in the request below
            state["error"] = error
        finally:
            done.set()

    started = time.monotonic()
    yield views.retrain_status(0.0, "starting", 0.0), gr.skip()  # this page's own run, from the start
    threading.Thread(target=run, name="retrain", daemon=True).start()
    while not done.wait(1.0):
        now = time.monotonic()
        yield views.retrain_status(state["fraction"], state["message"], now - started, state["epoch"],
                                   now - state.get("epoch_ended", now)), gr.skip()
    if "error" in state:
        running = service.retrain_started
        if isinstance(state["error"], RetrainBusy) and running:  # refused: say which retrain runs
            yield views.running_elsewhere_text(running), gr.skip()
        raise state["error"]
    yield f"**Finished** in {views.duration(time.monotonic() - started)}.", state["summary"]


def retrain_running(shown: str | None):
    """On opening the Retrain tab: a retrain running that this page did not start, or how the last
    one ended; the tab's timer on while such a retrain runs."""
    return _retrain_news(shown, results_below=service.last_retrain_summary() is not None)


def retrain_followed(shown: str | None):
    """Every few seconds while a retrain this page did not start runs (a walk's open tab showed 13%
    for the whole of one that reached its end): its latest step, then how it ended; the timer off then."""
    return _retrain_news(shown, results_read=False)


def _retrain_news(shown: str | None, **read: bool):
    """The Retrain tab's status line (:func:`views.running_retrain_text`, with ``read``) and its timer."""
    text = views.running_retrain_text(service.retrain_started, shown, service.last_retrain(),
                                      service.fetching_logs, service.retrain_progress, followed=True, **read)
    return gr.skip() if text is None else text, _retrain_followed(shown)


def _retrain_followed(shown: str | None):
    """The Retrain tab's timer: on while a retrain runs that the page does not stream; left as it is
    while the page's own streams (one refused as another runs starts as its own, then names the other)."""
    if views.streams_its_own_retrain(shown):
        return gr.skip()
    return gr.Timer(active=service.retrain_started is not None)


CARD_ACCORDION = "The chosen version's model card: data, figures, intended use and limits"
RETRAIN_FOLLOWED_EVERY_S = 5.0  # how often an open Retrain tab reads another's running retrain again


def retrain_failed(shown: str | None):
    """The status line after the Retrain button's run was refused or failed, and the button back."""
    return views.retrain_failed_text(shown), gr.update(interactive=True)


def retrain_views(summary: dict | None):
    if not summary:
        return (gr.skip(),) * 9
    current, candidate = summary["current_metrics"], summary["candidate_metrics"]
    named = {f"served {summary['current_version']}": current, "candidate": candidate}
    reason = views.gate_text(summary)
    history = summary["history"]
    losses, aucs = views.curves_frame(history), views.curves_frame(history, views.AUC_CURVE)
    return (gr.update(visible=True), views.verdict_text(summary, service.predictor.version), reason,
            views.comparison_frame(current, candidate, summary.get("baseline_metrics")),
            views.roc_frame({**named, "baseline": summary.get("baseline_metrics") or {}}),
            losses_shown(losses, aucs), shown_if_any(aucs),
            views.confusion_frame(candidate), gr.update(interactive=True))


def rejected_views(chosen: str | None = None):
    """The rejected candidates' table and choices, keeping the report chosen while it is listed."""
    rejected = service.registry.rejected()
    ids = [r["id"] for r in reversed(rejected)]
    return views.rejected_rows(rejected), gr.update(choices=ids, value=chosen if chosen in ids else None)


def rejected_report(rejected_id: str | None):
    """The chosen rejected candidate's verdict, gate, comparison table and full report, in the words
    and table the retrain showed; empty when none is chosen."""
    if not rejected_id:
        return "", None, None
    try:
        summary = service.rejected_summary(rejected_id)
    except MammoError as error:
        raise refusal("rejected candidate", error) from error
    return (f"{views.verdict_text(summary, service.predictor.version)}\n\n{views.gate_text(summary)}",
            views.comparison_frame(summary["current_metrics"], summary["candidate_metrics"],
                                   summary.get("baseline_metrics")),
            views.rounded(summary))


def last_results(shown: dict | None):
    """On opening the Retrain tab: the last retrain's results when it ended in a verdict and the page
    shows none or an earlier one's (a reload, a new visitor, a retrain another page ran). The Retrain
    button is left as it is."""
    last = service.last_retrain_summary()
    if not last:
        return (gr.skip(),) * 9
    if shown and (shown.get("version"), shown.get("rejected_id")) == (last["version"], last["rejected_id"]):
        # shown already: only its headline is said again, in the past where another version is served
        # now (a rollback since: "v3 stays served" beside "Served: v4" was wrong)
        return (gr.skip(), gr.skip(), views.verdict_text(shown, service.predictor.version), *(gr.skip(),) * 6)
    return (last, *retrain_views(last)[:-1])


def served_estimate():
    """What the served version is estimated to do (its card's figures) and its reliability plot."""
    mammo = service.served_config().get("mammo") or {}
    text = f"{views.estimate_text(mammo)}\n\n{views.retrain_recipe_text(mammo)}"
    return text, views.reliability_frame(views.estimate_metrics(mammo))


def access_note(profile: gr.OAuthProfile | None = None,
                token: gr.OAuthToken | None = None) -> str:
    note = can_train(_user(profile, token), SETTINGS).reason
    return " ".join(filter(None, [note, views.auto_retrain_text(service.auto_retrain_state())]))


# -- Analytics --------------------------------------------------------------------------------------
def analytics_views(profile: gr.OAuthProfile | None = None, token: gr.OAuthToken | None = None):
    """The Analytics tab: what the caller may see of the prediction log, the cases and versions."""
    user = _user(profile, token)
    records = service.prediction_records(user)
    low = analytics.low_confidence(records)
    growth = analytics.case_growth(service.cases.recent(10**9))
    aucs = analytics.version_metrics(service.versions())
    note = [analytics.scope_text(user, can_train(user, SETTINGS).allowed),
            analytics.latency_text(records), analytics.low_confidence_text(records, low),
            analytics.nothing_yet_text(growth, aucs, len(service.cases.withdrawn_cases()))]
    return (" ".join(filter(None, note)),
            *map(shown_if_any, (analytics.predictions_per_day(records), analytics.class_mix(records),
                                analytics.score_histogram(records))), low, *map(shown_if_any, (growth, aucs)),
            analytics.history_frame(service.own_predictions(user) if user else [], readable=True))


@clear_errors
def history_records(profile: gr.OAuthProfile | None = None, token: gr.OAuthToken | None = None) -> list:
    """Your predictions across sessions, oldest first (signed in, or an API caller passing a Hugging
    Face token with Client(..., oauth_token=...)): time, model version, scores, cut-off, flag,
    uncertainty, heat-map method, image SHA-256 and latency. No image is kept."""
    user = _user(profile, token)
    if user is None:
        raise gr.Error("Your history needs you to be signed in with Hugging Face (API callers: pass your "
                       "token, gradio_client.Client(..., oauth_token=HF_TOKEN)).")
    return service.own_predictions(user)


@clear_errors
def history_file(profile: gr.OAuthProfile | None = None, token: gr.OAuthToken | None = None) -> str:
    """Your history as CSV."""
    frame = analytics.history_frame(history_records(profile, token))
    return _download("mammo-history.csv", frame.to_csv(index=False))


# -- Models -----------------------------------------------------------------------------------------
@clear_errors
def models() -> list[dict]:
    """Every published version, oldest first, with its metrics, data size and dates."""
    return service.versions()


def models_views(versions: list):
    names = [v["version"] for v in versions]
    return (gr.update(value=views.versions_rows(versions, service.predictor.version, service.newest_problem),
                      label=views.versions_label(len(versions))),
            gr.update(choices=names, value=names[-1] if names else None))


@clear_errors
def version_files(version: str | None):
    """The chosen version's files and card; an open "serve it again?" question about another version
    closes in the same update (so it cannot close a question asked after the card is shown); the
    rollback button offers only what it can do (a walk was offered to serve the served version)."""
    if not version:
        raise gr.Error("Pick a version.")
    folder = service.registry.load(version)
    card = views.card_on_the_page(ModelCard(service.registry.card(version)).text)  # without its YAML header
    files = [str(folder / name) for name in ("model.safetensors", "config.json", "README.md")]
    return files, card, gr.update(visible=False), rollback_button_for(version)


# "(trainers only)" only where that is so: a local install lets everyone (a walk read it beside the
# Retrain tab's "Everyone may retrain here")
ROLLBACK_LABEL = "Serve this version again…" + (
    "" if can_train(None, SETTINGS).allowed else " (trainers only)")


def rollback_button_for(version: str) -> dict:
    """The rollback button under ``version``: disabled, and saying why, where ``version`` (or its
    weights, through a rollback's copy) is served now; a click on a stale one is still refused in words."""
    served = service.already_served(version)
    if served is None:
        return gr.update(value=ROLLBACK_LABEL, interactive=True)
    said = (f"{version} is served now" if version == served else
            f"{version}'s weights are served now (as {served})")
    return gr.update(value=said, interactive=False)


AUDIT_SHOWN_EVENTS = 500  # the audit table's newest events (read on each tab open; the CSV has them all)


def audit_views() -> list[list[str]]:
    return views.audit_rows(service.audit.events(last=AUDIT_SHOWN_EVENTS))


@clear_errors
def audit_file() -> str:
    """The audit log as CSV: every submission, bulk import, retrain (with its options), promotion,
    rejection and rollback, with who, when and what (case ids, versions, metrics, reasons); oldest
    first. Append-only: nothing in it is ever rewritten."""
    return _download(f"mammo-audit-{_utc_stamp()}.csv", service.audit.csv())


@clear_errors
def version_views(version: str | None):
    """The chosen version's recorded figures (ROC, training losses and AUC, reliability, confusion matrix)."""
    if not version:
        return (gr.skip(),) * 6
    config = service.registry.config(version)
    caption, roc, losses, aucs, reliability, confusion = views.version_figures(config.get("mammo") or {})
    return (caption, roc, losses_shown(losses, aucs), shown_if_any(aucs),
            gr.update(value=reliability, visible=views.has_calibration(reliability)), confusion)


PICK_A_VERSION = "Pick the version to serve again."


@clear_errors
def ask_rollback(version: str | None, profile: gr.OAuthProfile | None = None,
                 token: gr.OAuthToken | None = None):
    """Before serving an earlier version again: who may, whether it is not the one served, and a question."""
    if not version:
        raise gr.Error(PICK_A_VERSION)
    can_train(_user(profile, token), SETTINGS).require()
    rows = {row["version"]: row for row in service.versions()}
    if version not in rows:
        raise gr.Error(f"There is no version {echoed(version)}.")
    served, broken = service.check_rollback(version)
    if version == served:  # a newer version cannot be served: publishing the served one over it repairs
        return gr.update(visible=True), views.republish_question(version, broken), served
    return gr.update(visible=True), views.rollback_question(version, served, rows), served


@clear_errors
def rollback_version(version: str | None, profile: gr.OAuthProfile | None = None,
                     token: gr.OAuthToken | None = None) -> dict:
    """Serve an earlier version again (trainers only; API callers pass their Hugging Face token with
    Client(..., oauth_token=...)). It is published as the next version, the history kept; returns
    the new `version` and the one it copies (`rollback_of`)."""
    if version is None or version == "":
        raise gr.Error(PICK_A_VERSION)
    version = str(version).strip()  # an API caller's 5 is looked up as "5" (refused as no such version)
    return {"version": service.rollback(version, user=_user(profile, token)), "rollback_of": version}


@clear_errors
def rollback(version: str | None, replacing: str, profile: gr.OAuthProfile | None = None,
             token: gr.OAuthToken | None = None):
    """The Models tab's confirmed rollback: refused when the served version is no longer the one the
    question named (a version published meanwhile by another process)."""
    if not version:
        raise gr.Error(PICK_A_VERSION)
    new = service.rollback(version, user=_user(profile, token), replacing=replacing or None)
    return f"Serving {version} again, published as {new}.", gr.update(visible=False)


# -- Health -----------------------------------------------------------------------------------------
def health() -> dict:
    """For monitors: `status` ("ok" or "degraded"), the served `model_version`, whether the case and
    model stores and the Hub answer, the base data, whether a retrain runs, requests waiting in
    the queue, and the uptime in seconds. Also a plain HTTP GET on /health."""
    waiting = len(demo._queue) if getattr(demo, "_queue", None) is not None else None  # Gradio's queue
    return {**service.health(), "queue_waiting": waiting}


def health_route() -> JSONResponse:
    """GET /health: the same report; HTTP 503 when degraded, 500 (logged) when the check itself fails."""
    try:
        report = health()
    except Exception as error:  # noqa: BLE001 - a monitor gets an answer; the traceback goes to the log
        log.exception("the health check failed")
        return JSONResponse({"status": "error", "error": type(error).__name__}, status_code=500)
    return JSONResponse(report, status_code=200 if report["status"] == "ok" else 503)


def unknown_endpoint(request: Request, error: FnIndexInferError) -> JSONResponse:
    """An HTTP call of an API name the app does not have: 404 naming the ones it has, one log line
    (Gradio answered 500 Internal Server Error and logged a traceback)."""
    names = sorted(f"/{fn.api_name}" for fn in demo.fns.values() if fn.api_visibility == "public")
    log.warning("unknown API endpoint refused: %s", request.url.path)
    said = f"No API endpoint is called that; the app's endpoints: {', '.join(names)}."
    return JSONResponse({"error": said}, status_code=404)


def build() -> gr.Blocks:
    with gr.Blocks(title="mammo — mammogram classifier (research only)",
                   delete_cache=SETTINGS.file_sweep) as demo:
        gr.Markdown(f"# mammo\nA mammogram classifier with lesion maps that learns from the clinicians "
                    f"who use it.\n\n> **{DISCLAIMER}**")
        if SETTINGS.on_spaces:
            gr.LoginButton()
        with gr.Tab("Predict"):
            with gr.Row():
                with gr.Column():
                    image = mammogram_file(f"Mammogram ({SUPPORTED})")
                    uploaded = gr.Image(label="Uploaded image", type="numpy", interactive=False, height=320,
                                        alt_text="The uploaded image, in grey, as the model reads it")
                    method = gr.Dropdown(list(HEATMAP_METHODS), value=DEFAULT_METHOD, label="Heat-map method",
                                         **CHECKED_HERE)
                    opacity = in_bounds(gr.Slider(*OPACITY_RANGE, value=DEFAULT_OPACITY, step=0.05,
                                                  label="Heat-map opacity"), "Heat-map opacity")
                    predict_button = gr.Button("Predict", variant="primary", elem_id="predict-button")
                    with gr.Accordion("Submitted cases", open=False):
                        case_choice = gr.Dropdown([], value=None, label="A recent case (id, confirmed label)")
                        use_case = gr.Button("Predict this case", size="sm")
                    # the caption above, not as the gallery's label: that lies over the first row of films
                    # (two lines of it on a phone)
                    gr.Markdown("**Real film mammograms** (CBIS-DDSM, CC BY 3.0; see examples/README.md): "
                                "click one to predict it", elem_id="real-films-caption")
                    gallery = gr.Gallery([(str(p), film_caption(p)) for p in REAL_FILMS], columns=4,
                                         height="auto", allow_preview=False, elem_id="real-films",
                                         label="Real film mammograms", show_label=False)
                    # not gr.Examples: it keeps the first copy of a file example it put in Gradio's
                    # upload folder, and after the files' age (MAMMO_KEEP_FILES_HOURS) offers the deleted
                    # copy for good; picked here, the file is copied there again when it is gone
                    phantoms = gr.Dataset(components=["textbox"], samples=[[p.name] for p in PHANTOMS],
                                          label="Synthetic phantoms for edge cases (not real patients): "
                                                "click one to predict it",
                                          visible=bool(PHANTOMS))
                with gr.Column():
                    hint = gr.Markdown(NO_FILE_HINT, elem_id="result-hint")
                    unreadable = gr.Markdown(visible=False, elem_id="unreadable-file")
                    # the file whose results, report, full-size heat map and offer are on the page (its path)
                    results_for, report_for, heatmap_for, offer_for, previewed_for = (
                        gr.Textbox(visible=False) for _ in range(5))
                    with gr.Column(visible=False) as film_results:  # shown with a result of this file
                        flag_line = gr.Markdown(elem_id="review-flag")
                        # no class name in large type over the bars: a film is most often "normal" first,
                        # and read at a glance that reads as the verdict; the review flag is the headline
                        probabilities = gr.Label(num_top_classes=3, show_heading=False,
                                                 label="Class probabilities (most likely class first)")
                        # a screen reader read a bare "img" here (an accessibility walk)
                        overlay = gr.Image(label="Heat map over the image", type="numpy",
                                           format=OVERLAY_FORMAT, interactive=False, height=640,
                                           alt_text="The image with the heat map drawn over it: blue where "
                                                    "the evidence is weak, red where it is strong")
                        score = gr.Markdown()
                        details = gr.JSON(label="details", visible=False)  # the API's, full precision
                        with gr.Accordion("Details", open=False):
                            shown_details = gr.JSON(label="Details (rounded; the API returns full precision)")
                        # with the result they are of (a walk's PDF, made for a file uploaded after the
                        # prediction shown, held a prediction the page never showed)
                        report_button = gr.Button("PDF report of this prediction", size="sm")
                        report_download = download_box("PDF report", visible=False)
                        with gr.Accordion("Full-resolution heat map", open=False):
                            heatmap_button = gr.Button("Make the heat map at the file's full size "
                                                       "(16-bit PNG)", size="sm")
                            gr.Markdown(HEATMAP_FILE_EXPLAINED)
                            heatmap_download = download_box("heat map")
                    with gr.Column(visible=False) as film_actions:  # shown once a file is uploaded
                        offer_button = gr.Button("Offer this image for labelling", size="sm")
                        offer_note = gr.Markdown(OFFER_EXPLAINED, label="offered")
                        nothing_to_label = gr.Markdown(visible=False, elem_id="nothing-to-label")
            history_state = gr.State([])
            history = gr.Dataframe(headers=views.HISTORY_COLUMNS, label="Your predictions this session",
                                   interactive=False, wrap=True,  # a note's words stay whole
                                   elem_classes="wide-table", elem_id="history")
        with gr.Tab("Submit case") as submit_tab:
            gr.Markdown("Add a case with its **confirmed** label. The image is re-encoded (no EXIF or "
                        "DICOM tags are kept). Do not type patient identifiers in the notes.")
            with gr.Row():
                with gr.Column():
                    case_image = mammogram_file(f"Image ({SUPPORTED})")
                    use_predict = gr.Button("Use the image from Predict", size="sm")
                    # the clinician confirms a label for what they see (a DICOM or 16-bit PNG included)
                    case_preview = gr.Image(label="The image to be labelled", type="numpy", interactive=False,
                                            height=320, alt_text="The image to be labelled, as stored")
                    label = gr.Dropdown(service.labels, value=None, label="Confirmed label", **CHECKED_HERE)
                    with gr.Accordion("Optional metadata (empty fields are stored as empty)",
                                      open=False) as metadata_box:
                        metadata = [metadata_input(f) for f in METADATA_FIELDS.values()]
                    # on once an image is in the form (below)
                    submit_button = gr.Button("Submit case", variant="primary", interactive=False)
                with gr.Column():
                    receipt_text = gr.Markdown(elem_id="receipt-text")
                    with gr.Accordion("Receipt (JSON)", open=False):
                        receipt = gr.JSON(label="receipt")
                    colours = {name: SOURCE_COLOURS[name] for name in ("cases", views.BASE_FILM_CASES)}
                    counts = gr.BarPlot(x="label", y="images", color="source", sort=list(service.labels),
                                        label="Submitted cases per label (the base data's films: Retrain "
                                              "tab)", color_map=colours)
                    figures_tables(counts)
            with gr.Accordion("Correct a stored case's label, or withdraw the case", open=False):
                gr.Markdown("A case stored with a wrong label keeps its image; the correction is stored "
                            "beside it and the audit log records who changed what. The next retrain "
                            "learns the corrected label (a case whose image is a base film stays left "
                            "out, and the receipt says so); published versions keep what they learnt. "
                            "A case that should not be in the dataset at all (an identifier in the image, "
                            "the wrong image, consent withdrawn) is **withdrawn** instead: left out of "
                            "everything from then on, and audited.")
                with gr.Row():
                    with gr.Column():
                        fix_case = gr.Dropdown([], value=None, allow_custom_value=True,
                                               label="Case: one of the 20 latest, or type its id (at least "
                                                     "its first 8 characters: in its receipt, or in the "
                                                     "audit log on the Models tab)")
                        fix_label = gr.Dropdown(service.labels, value=None, label="Its correct label",
                                                **CHECKED_HERE)
                        fix_button = gr.Button("Correct the label", variant="primary")
                        withdraw_reason = gr.Dropdown(list(WITHDRAWAL_REASONS), value=None,
                                                      label="Or withdraw the case: why", **CHECKED_HERE)
                        withdraw_button = gr.Button("Withdraw the case…", variant="stop")
                        with gr.Column(visible=False) as withdraw_row:  # the question above its answers
                            withdraw_question = gr.Markdown()
                            withdraw_named = gr.State(None)  # [case id, reason] the question named
                            with gr.Row():
                                withdraw_confirm = gr.Button("Yes, withdraw it", variant="stop")
                                withdraw_cancel = gr.Button("Cancel")
                        fix_text = gr.Markdown()
                        fix_receipt = gr.JSON(label="correction receipt", visible=False)  # the API's answer
                        withdraw_receipt = gr.JSON(label="withdrawal receipt", visible=False)
                    fix_preview = gr.Image(label="The stored image", type="numpy", interactive=False,
                                           height=320, alt_text="The stored case's image")
            with gr.Accordion("Label next: images visitors offered for labelling, the most uncertain first",
                              open=False):
                queue_note = gr.Markdown()
                queue_table = gr.Dataframe(headers=views.QUEUE_COLUMNS, interactive=False,
                                           label="Images waiting for a label", elem_classes="wide-table")
                with gr.Row():
                    with gr.Column():
                        queue_choice = gr.Dropdown([], value=None, label="Pending image", **CHECKED_HERE)
                        queue_label = gr.Dropdown(service.labels, value=None, label="Its confirmed label",
                                                  **CHECKED_HERE)
                        queue_submit = gr.Button("Store it as a case with this label", variant="primary")
                        queue_remove = gr.Button("Remove it from the pool", variant="stop", size="sm")
                        queue_result = gr.Markdown()
                    queue_preview = gr.Image(label="The pending image", type="numpy", interactive=False,
                                             height=320, alt_text="The image offered for labelling")
            with gr.Accordion("Bulk upload", open=False):
                bulk_files = gr.File(label="Images of one label, or a zip of <label>/<file> folders",
                                     file_count="multiple", type="filepath")
                bulk_label = gr.Dropdown(service.labels, value=None, label="Label (not needed for a zip)",
                                         **CHECKED_HERE)
                bulk_button = gr.Button("Submit all")
                bulk_text = gr.Markdown(elem_id="bulk-text")
                with gr.Accordion("Batch receipt (JSON)", open=False):  # the text above says it in words
                    bulk_receipt = gr.JSON(label="batch receipt")
        with gr.Tab("Retrain") as retrain_tab:
            access = gr.Markdown()
            data_plot = gr.BarPlot(x="label", y="images", color="source", label="Data available",
                                   color_map=SOURCE_COLOURS, sort=list(service.labels))  # the receipts' order
            figures_tables(data_plot)
            with gr.Row():
                epochs = in_bounds(gr.Slider(*RetrainOptions.EPOCH_RANGE, value=RetrainOptions.epochs, step=1,
                                             label="Epochs",
                                             info="Of the served recipe's first stage; what else it runs is "
                                                  "said below"), "Epochs", whole=True)
                smallest, largest = service.image_sizes()  # checked by the service (a walk: the box said
                # only what 0 does, and 32 was refused)
                image_size = in_bounds(gr.Number(value=0, precision=0, label="Image size in pixels",
                                                 info=f"0 keeps the current model's; else {smallest} to "
                                                      f"{largest}"),
                                       "Image size", whole=True)
                from_current = gr.Checkbox(value=True, label="Start from the current version")
            served = gr.Markdown()
            with gr.Row():
                retrain_button = gr.Button("Retrain", variant="primary", scale=0, min_width=160)  # the
                # status line takes the rest of the row
                status = gr.Markdown(elem_id="retrain-status")  # filled as the page loads; PAGE_CSS
                follow = gr.Timer(RETRAIN_FOLLOWED_EVERY_S, active=False)  # on while another's retrain runs
            with gr.Column(visible=False) as results:
                verdict = gr.Markdown()
                with gr.Accordion("Details: the gate's rule, the split, the full summary", open=False):
                    gate = gr.Markdown()
                    summary = gr.JSON(label="summary")
                comparison = gr.Dataframe(label="Served vs candidate (and a simple baseline) on the fixed "
                                                "held-out patients", interactive=False, **COMPARISON_LAYOUT)
                with gr.Row():
                    roc = gr.LinePlot(x="false positive rate", y="true positive rate", color="model",
                                      label="ROC, malignant vs rest (holdout)", min_width=PLOT_MIN_WIDTH)
                    losses = loss_plot()
                    aucs = auc_plot()
                figures_tables(roc, losses, aucs)
                confusion = gr.Dataframe(label=f"Candidate confusion matrix (holdout; {CONFUSION_COUNTS})",
                                         interactive=False, **COMPARISON_LAYOUT)
            reliability = gr.LinePlot(x="mean predicted P(malignant)", y="observed malignant share",
                                      color="model", tooltip=views.RELIABILITY_COLUMNS,
                                      label="Reliability of the served version's scores (calibration): "
                                      f"observed vs predicted; the diagonal is perfect. {FEW_FILMS_A_BIN}")
            figures_tables(reliability)
            with gr.Accordion("Rejected candidates", open=False):
                rejected = gr.Dataframe(headers=views.REJECTED_COLUMNS, interactive=False,
                                        label="Candidates the gate did not promote, newest first",
                                        elem_classes="wide-table")
                rejected_choice = gr.Dropdown([], value=None, label="Show the report of")
                rejected_verdict = gr.Markdown()
                rejected_comparison = gr.Dataframe(label="Served vs this candidate (and the baseline) on "
                                                         "the held-out patients", interactive=False,
                                                   headers=["metric", "current", "candidate"],
                                                   **COMPARISON_LAYOUT)
                with gr.Accordion("Its full report", open=False):
                    rejected_json = gr.JSON(label="Report")
        with gr.Tab("Analytics") as analytics_tab:
            analytics_note = gr.Markdown()
            analytics_refresh = gr.Button("Refresh", size="sm")
            with gr.Row():
                # counts: a single bar still shows (then count_room)
                from_zero = {"y_lim": [0, None], "min_width": PLOT_MIN_WIDTH}
                slanted = {"x_label_angle": -45}  # dates and score bins: on a phone, level ones ran together
                per_day = gr.BarPlot(x="day", y="predictions", label="Predictions per day (UTC)", **slanted,
                                     **from_zero)
                # no legend: it named each bar's class a second time, under the axis's names (a walk)
                mix = gr.BarPlot(x="most likely class", y="predictions", color="most likely class",
                                 label="Most likely class", sort=list(service.labels), colors_in_legend=[],
                                 **from_zero)
            with gr.Row():
                scores = gr.BarPlot(x="malignancy score", y="predictions",
                                    label="Malignancy scores (0-100, as shown: calibrated where the "
                                          "model was)", **slanted, **from_zero)
                growth = gr.BarPlot(x="day", y="cases", color="label",  # stacked: no point hides another
                                    label="Submitted cases by label, cumulative (the bars' height: all cases "
                                          "by that day)", **slanted, **from_zero)
            version_auc = gr.ScatterPlot(x="trained", y="AUC malignant vs rest", color="estimate",
                                         y_lim=[0, 1],  # the whole scale: no point cut at an axis end
                                         **slanted,
                                         tooltip="all",  # the version, its films and the interval
                                         label="Each version's AUC by when it was trained (UTC), one colour "
                                               "for each kind of estimate: out of fold (cross-validated), "
                                               "on the held-out patients, on validation. Compare like "
                                               "with like; point at a dot for its version and interval")
            figures_tables(per_day, mix, scores, growth, version_auc)
            near = analytics.NEAR_CUT_OFF
            low = gr.Dataframe(label=f"Low-confidence predictions: within {near:.0f} points of the review "
                                     "cut-off, or with a high uncertainty (newest first)",
                               interactive=False, wrap=True, elem_classes="wide-table")
            with gr.Accordion("Your predictions across sessions (signed-in users)", open=False):
                # a sign-in exists on a Space only: elsewhere the accordion says so instead of a button
                # that can only refuse (the Predict tab lists the predictions of the session)
                gr.Markdown("Signed in with Hugging Face (the button at the top of the page), you keep your "
                            "predictions across sessions and can export them." if SETTINGS.on_spaces else
                            "This install has no sign-in (a Hugging Face Space has one), so it keeps no "
                            "history across sessions: the Predict tab lists your predictions of this "
                            "session. API callers pass a Hugging Face token on a Space "
                            "(`/history`).")
                history_table = gr.Dataframe(headers=analytics.HISTORY_HEADERS, interactive=False,
                                             visible=SETTINGS.on_spaces, elem_classes="wide-table")
                history_button = gr.Button("Export your history as CSV", size="sm",
                                           visible=SETTINGS.on_spaces)
                history_csv = download_box("Your history (CSV)", visible=SETTINGS.on_spaces)
        with gr.Tab("Models") as models_tab:
            versions_json = gr.JSON(label="versions", visible=False)
            versions = gr.Dataframe(headers=views.VERSION_COLUMNS, label="Versions (newest first)",
                                    interactive=False, wrap=True, elem_id="versions",  # every column fits
                                    column_widths=["7%", "6%", "8%", "8%", "6%", "7%", "13%", "13%", "9%",
                                                   "7%", "8%", "8%"], elem_classes="wide-table")
            gr.Markdown(views.VERSIONS_EXPLAINED)
            refresh = gr.Button("Refresh", size="sm")
            with gr.Row(equal_height=True):
                version = gr.Dropdown([], value=None, label="Version", scale=2, **CHECKED_HERE)
                rollback_button = gr.Button(ROLLBACK_LABEL, variant="stop", scale=1)
            with gr.Column(visible=False) as confirm_row:  # the question above its answers
                question = gr.Markdown()
                asked_replacing = gr.Textbox(visible=False)  # the version served when the question was asked
                with gr.Row():
                    confirm = gr.Button("Yes, serve it again", variant="stop")
                    cancel = gr.Button("Cancel")
            rollback_note = gr.Markdown()
            version_caption = gr.Markdown()
            with gr.Row():
                version_roc = gr.LinePlot(x="false positive rate", y="true positive rate", color="model",
                                          label="ROC, malignant vs rest", min_width=PLOT_MIN_WIDTH)
                version_losses = loss_plot()
                version_aucs = auc_plot()
            with gr.Row():
                version_reliability = gr.LinePlot(
                    x="mean predicted P(malignant)", y="observed malignant share", color="model",
                    tooltip=views.RELIABILITY_COLUMNS, label=f"Reliability (calibration). {FEW_FILMS_A_BIN}",
                    min_width=PLOT_MIN_WIDTH)
                version_confusion = gr.Dataframe(label=f"Confusion matrix ({CONFUSION_COUNTS})",
                                                 interactive=False, min_width=PLOT_MIN_WIDTH,
                                                 **COMPARISON_LAYOUT)
            figures_tables(version_roc, version_losses, version_aucs, version_reliability)
            files = download_box("Weights, config and card", file_count="multiple")
            with gr.Accordion("Audit log: who submitted, corrected, withdrew, retrained, promoted or rolled "
                              "back what, and when",
                              open=False):
                audit = gr.Dataframe(headers=views.AUDIT_SHOWN, interactive=False, wrap=True,
                                     # "what" wraps, not clipped; at a phone's 960 px "submission" and
                                     # "anonymous" fit (they read "submissio n", "anonym": a walk)
                                     column_widths=["15%", "12%", "11%", "62%"],
                                     label=f"The newest {AUDIT_SHOWN_EVENTS} events first (the CSV holds "
                                           "them all); append-only: nothing in it is ever rewritten",
                                     elem_classes="wide-table")
                audit_button = gr.Button("Export the audit log as CSV", size="sm")
                audit_csv = download_box("Audit log (CSV)", visible=False)  # an empty box until exported
            # folded: drawn in full it made the tab 8,600 px long (18,000 on a phone; a walk)
            with gr.Accordion(CARD_ACCORDION, open=False):
                card = gr.Markdown()
        with gr.Accordion("Words and figures used on these pages", open=False):
            gr.Markdown(glossary_markdown())

        private = dict(api_visibility="private")
        film_inputs = [image, method, opacity]
        predicting = dict(concurrency_limit=2, concurrency_id="predict")  # the API's and the page's
        gr.on([], predict, film_inputs, [probabilities, overlay, details], api_name="predict",  # API only
              api_description=predict.__doc__, **predicting)
        result_outputs = [probabilities, overlay, details, flag_line, score, shown_details, results_for]
        # on the page, Predict clicked while this page's last prediction runs is run after it (on the
        # file then in the box), not dropped: the later file's answer comes last (CHAINED's "always_last";
        # Gradio 6.31 keeps one waiting run, and loses it when the running one ends in an error)
        hint_of_the_file = [image, previewed_for, unreadable, results_for]  # what the hint depends on
        predicted = predict_button.click(predict_shown, [*film_inputs, results_for], result_outputs,
                                         **predicting, **CHAINED)
        # a gallery film is predicted by a click on Predict itself: one event, so a film picked while
        # another file is predicted is predicted after it and its answer is the one left shown
        gallery.select(pick_film, None, image, **private).success(None, js=CLICK_PREDICT_JS, **private)
        # and a phantom likewise (a walk: a real film predicted on its click, a phantom waited for Predict)
        phantoms.click(pick_phantom, phantoms, image, **private).success(None, js=CLICK_PREDICT_JS, **private)
        # a film of the gallery stays highlighted only while it is the file in the box: one uploaded,
        # cleared or loaded from the stored cases takes the highlight off (it read as the film shown)
        for replaced in (image.upload, image.clear, phantoms.click):  # (a stored case: case_file)
            replaced(None, None, gallery, js=DESELECT_JS, **private)

        def shown_beside_its_file(event, shown, shown_for) -> None:
            event.success(None, [image, shown_for], shown, js=SAME_FILE_JS, **private)

        predicted.success(None, [image, results_for], film_results, js=SAME_FILE_JS, **private).then(
            None, None, None, js=SCROLL_TO_RESULT_JS, **private)
        # the hint to press Predict goes at the click (in the browser, at once: a gallery pick clicks it
        # too) and is put back if the prediction fails
        predict_button.click(None, None, hint, js=hide_js(1), **private)
        predicted.success(None, hint_of_the_file, hint, js=HINT_OF_THE_FILE_JS, **private)
        predicted.failure(None, hint_of_the_file, hint, js=HINT_OF_THE_FILE_JS, **private)
        predicted.success(add_history, [image, results_for, details, history_state], [history_state, history],
                          **CHAINED)
        # an opacity typed in the slider's box or stepped with the arrow keys is an input, not a release;
        # a report made with the earlier method or opacity, or a full-size map made with the earlier
        # method (it has no opacity), is hidden (made again on click)
        opacity.input(None, opacity, opacity, js=CLAMP_OPACITY_JS, **private)
        for redraw_event, drawn_before in ((method.change, [report_download, heatmap_download]),
                                           (opacity.input, [report_download]),
                                           (opacity.release, [report_download])):
            redraw_event(None, None, drawn_before, js=hide_js(len(drawn_before)), **private)
            # always_last: an opacity stepped while the last step's redraw runs is drawn after it; no
            # progress shown: a refusal is said in a toast and leaves the result drawn (shown progress
            # would leave an "Error" badge over each output)
            redrawn = redraw_event(redraw, film_inputs, result_outputs, js=REDRAW_CLAMPED_JS,
                                   concurrency_limit=2, show_progress="hidden", **CHAINED)
            shown_beside_its_file(redrawn, film_results, results_for)
            redrawn.success(None, hint_of_the_file, hint, js=HINT_OF_THE_FILE_JS, **private)
        of_the_file = [film_results, report_download, heatmap_download, unreadable, film_actions]
        image.change(None, None, of_the_file, js=hide_js(len(of_the_file)), **private)
        previewed = [uploaded, unreadable, offer_button, offer_note, nothing_to_label, previewed_for]
        # the file's actions, or why it cannot be read, shown only beside it (a preview of the file
        # before, still in the queue when this one was put in, showed that file's Offer state here)
        image.change(predict_preview, image, previewed, **private).success(
            None, [image, previewed_for, unreadable], [film_actions, unreadable], js=PREVIEW_OF_THE_FILE_JS,
            **private).then(None, hint_of_the_file, hint, js=HINT_OF_THE_FILE_JS, **private)
        image.change(None, hint_of_the_file, hint, js=HINT_OF_THE_FILE_JS, **private)
        case_image.change(preview, case_image, case_preview, **private)
        side_and_view = [metadata[list(METADATA_FIELDS).index(name)] for name in views.HEADER_FIELDS]
        header_filled = gr.State({})  # what the last file's header filled in (from_the_header)
        case_image.change(from_the_header, [case_image, header_filled, *side_and_view],
                          [*side_and_view, metadata_box, header_filled], **private)
        for field in side_and_view:  # a pick by hand (.select: not the header's own filling in)
            field.select(against_the_header, [case_image, *side_and_view], None, **private)
        # Submit case is on only with an image in the form: a click on the form emptied after a stored case
        # (a second click) was refused, and Gradio's red "Error" took the stored case's JSON receipt's place
        case_image.change(None, case_image, submit_button, js=on_with_a_file_js(submit_button), **private)
        # not an earlier file's offer: put back in the browser at once (through the queue, the step could
        # come after an Offer clicked just after the upload, and wipe its answer)
        image.change(None, None, offer_note, js=f"() => {json.dumps(OFFER_EXPLAINED)}", **private)
        full_sized = dict(concurrency_limit=2, concurrency_id="heatmap")  # the API's and the page's
        gr.on([], heatmap_file, [image, method], heatmap_download, api_name="heatmap",  # API only
              api_description=heatmap_file.__doc__, **full_sized)
        full_size = heatmap_button.click(heatmap_shown, [image, method], [heatmap_download, heatmap_for],
                                         **full_sized, **private)
        shown_beside_its_file(full_size, heatmap_download, heatmap_for)
        reporting = dict(concurrency_limit=2, concurrency_id="report")  # the API's and the page's
        gr.on([], report_file, film_inputs, report_download, api_name="report",  # API only
              api_description=report_file.__doc__, **reporting)
        reported = report_button.click(report_shown, film_inputs, [report_download, report_for],
                                       **reporting, **private)
        shown_beside_its_file(reported, report_download, report_for)
        use_predict.click(predict_image, image, case_image, **private)
        # a stored case is predicted as a gallery film is: loaded, then Predict clicked (one event); with
        # none picked, that is said and the file in the box is not predicted
        use_case.click(case_file, case_choice, [image, gallery], **private).success(
            None, case_choice, None, js=CLICK_PREDICT_PICKED_JS, **private)

        # the button is off from the click (in the browser, at once) until the form is emptied or the
        # refusal shown: a double click submitted the case again, and "already submitted" took the
        # first receipt off the page (Submit all likewise, below)
        submitting = dict(concurrency_limit=4, concurrency_id="submit")  # the API's and the page's
        gr.on([], submit_case, [case_image, label, *metadata], receipt, api_name="submit_case",  # API only
              api_description=submit_case.__doc__, **submitting)
        sent_file = gr.State()  # the file the page's last submission was for (after_submit)
        submitted = pressed_once(submit_button, submit_case_shown, [case_image, label, *metadata],
                                 [receipt, sent_file], **submitting, **private)

        def cases_stored(event) -> None:
            """After ``event`` stored cases: the totals, the recent cases and the audit log shown anew."""
            totals_shown = event.success(submitted_totals, None, counts, **CHAINED)
            counted_room(totals_shown, {counts: ("label", "images")})
            totals_shown.then(
                recent_cases, None, [case_choice, fix_case], **CHAINED).then(
                audit_views, None, audit, **CHAINED)

        emptied = submitted.success(after_submit, [receipt, sent_file, case_image],
                                    [receipt_text, case_image, label, *metadata], **CHAINED)
        cases_stored(emptied)
        # a file kept (put in while the case was stored) has its header read again into the emptied form
        emptied.then(from_the_header, [case_image, header_filled, *side_and_view],
                     [*side_and_view, metadata_box, header_filled], **private)
        # a refused filled form's reason takes the receipt's place (submit_case_shown), its button on again
        # to put it right; the emptied form's stays off until the next image (above)
        emptied.then(None, case_image, submit_button, js=submitted_js(submit_button, receipt_text.elem_id),
                     **private)
        on_again_if_failed(submit_button, submitted)

        def amends(button: gr.Button, fn: Callable[..., dict], inputs: list, amended_receipt: gr.JSON,
                   said: Callable[..., tuple], shown: list, also_read: tuple = ()) -> None:
            """A click on ``button`` amends a stored case through ``fn`` (the API's endpoints are
            registered apart, below); ``said`` turns its receipt (and ``also_read``) into ``shown``. A
            refusal (said in the corner) leaves the last amendment's words: they still hold."""
            amended = pressed_once(button, fn, inputs, amended_receipt, concurrency_limit=4,  # the API's
                                   api_name=f"{fn.__name__}_on_page", **private)  # name stays free
            amended_said = amended.success(said, [amended_receipt, *also_read], shown, **CHAINED)
            cases_stored(amended_said)
            turn_on(button, amended_said)
            on_again_if_failed(button, amended)

        amends(fix_button, correct_label, [fix_case, fix_label], fix_receipt, after_correction,
               [fix_text, fix_label, receipt_text, receipt], also_read=(receipt,))
        # the page asks first (a withdrawal is final) and withdraws what the question named; the API's
        # /withdraw_case withdraws at once (registered below, API only)
        withdraw_button.click(ask_withdrawal, [fix_case, withdraw_reason],
                              [withdraw_row, withdraw_question, withdraw_named], **private)
        amends(withdraw_confirm, withdraw_asked, [withdraw_named], withdraw_receipt, after_withdrawal,
               [fix_text, fix_case, fix_label, withdraw_reason, fix_preview, withdraw_row, receipt_text,
                receipt], also_read=(receipt,))
        # a question no longer about the form (another case or reason, a correction) goes, in the browser
        for asked_of in (withdraw_cancel.click, fix_case.change, withdraw_reason.change, fix_button.click):
            asked_of(None, None, withdraw_row, js=hide_js(1), **private)
        fix_case.change(stored_case_preview, fix_case, fix_preview, **private)
        # the last amendment's words are about the case it named: another case picked, they go (a
        # change made by the page itself, as the form emptied after a withdrawal, keeps them)
        fix_case.input(lambda: "", None, fix_text, **private)
        bulk_submitted = pressed_once(bulk_button, submit_bulk_shown, [bulk_files, bulk_label], bulk_receipt,
                                      concurrency_limit=1, **private)
        bulk_said = bulk_submitted.success(bulk_after, bulk_receipt, [bulk_text, bulk_files], **CHAINED)
        cases_stored(bulk_said)
        turn_on(bulk_button, bulk_said,
                bulk_submitted.failure(lambda: ("", None), None, [bulk_text, bulk_receipt], **CHAINED))

        # 2, not 1: a second request must reach the service and be told a retrain is running
        gr.on([], retrain, [epochs, image_size, from_current], summary, api_name="retrain",  # API only
              api_description=retrain.__doc__, concurrency_limit=2)
        # off in the browser at the click: through the server, a quick second click came first and a
        # refused size was said twice (a walk)
        running = pressed_once(retrain_button, retrain_live, [epochs, image_size, from_current],
                               [status, summary], concurrency_limit=2, **private)
        shown = running.success(retrain_views, summary, [results, verdict, gate, comparison, roc, losses,
                                                         aucs, confusion, retrain_button], **private)
        recolour(shown, {roc: "model", losses: "series"})  # "served v4" after "served v3"
        give_room(shown, losses, aucs)
        counted_room(shown.then(totals, None, data_plot, **private), {data_plot: ("label", "images")})
        shown.then(rejected_views, rejected_choice, [rejected, rejected_choice], **private)
        recolour(shown.then(served_estimate, None, [served, reliability], **private), {reliability: "model"})
        running.failure(retrain_failed, status, [status, retrain_button], **CHAINED)
        rejected_choice.change(rejected_report, rejected_choice,
                               [rejected_verdict, rejected_comparison, rejected_json], **private)

        models_event = dict(fn=models, inputs=None, outputs=versions_json)
        refresh.click(**models_event, api_name="models", api_description=models.__doc__).then(
            audit_views, None, audit, **CHAINED)
        versions_json.change(models_views, versions_json, [versions, version], **private)
        version.change(version_files, version, [files, card, confirm_row, rollback_button], **private)
        version_figures = [version_caption, version_roc, version_losses, version_aucs, version_reliability,
                           version_confusion]
        version_shown = version.change(version_views, version, version_figures, **private)
        recolour(version_shown,
                 {version_roc: "model", version_losses: "series", version_reliability: "model"})
        give_room(version_shown, version_losses, version_aucs)
        rollback_button.click(ask_rollback, version, [confirm_row, question, asked_replacing], **private)
        cancel.click(lambda: gr.update(visible=False), None, confirm_row, **private)
        # the API-only endpoints' own input and outputs, named for the API page (`view_api`): the
        # Version dropdown's choices are filled at page load, so as an API input it would list none
        api_version = gr.Textbox(visible=False, label="version")
        api_outputs = {name: gr.JSON(visible=False, label=name)
                       for name in ("served again", "health", "pending images", "your predictions",
                                    "withdrawal receipt")}
        api_case = gr.Textbox(visible=False, label="case id")
        api_reason = gr.Textbox(visible=False, label="reason")
        # the case id as a text box: the page's case dropdown is filled at page load, so the API page
        # listed its choices as none (``Literal[]``) though any stored case's id is taken
        gr.on([], correct_label, [api_case, fix_label], fix_receipt, api_name="correct_label",  # API only
              api_description=correct_label.__doc__, concurrency_limit=4)
        gr.on([], withdraw_case, [api_case, api_reason], api_outputs["withdrawal receipt"],  # API only
              api_name="withdraw_case", api_description=withdraw_case.__doc__, concurrency_limit=4)
        gr.on([], rollback_version, api_version, api_outputs["served again"], api_name="rollback",  # API only
              api_description=rollback_version.__doc__, concurrency_limit=1)
        gr.on([], health, None, api_outputs["health"], api_name="health", api_description=health.__doc__,
              concurrency_limit=None)  # never waits behind predictions
        recolour(confirm.click(rollback, [version, asked_replacing], [rollback_note, confirm_row],
                               concurrency_limit=1, **private).success(**models_event, **CHAINED).then(
            served_estimate, None, [served, reliability], **CHAINED), {reliability: "model"})
        counted_room(demo.load(submitted_totals, None, counts, **private), {counts: ("label", "images")})
        demo.load(recent_cases, None, [case_choice, fix_case], **private)
        # what another session (or the auto-retrain) may have changed since the page loaded: read again
        # when the tab is opened (a promotion, a rollback, new cases)
        follow.tick(retrain_followed, status, [status, follow], **private)
        for show in (demo.load, retrain_tab.select):
            counted_room(show(totals, None, data_plot, **private), {data_plot: ("label", "images")})
            show(access_note, None, access, **private)
            show(retrain_running, status, [status, follow], **private)
            restored = show(last_results, summary, [summary, results, verdict, gate, comparison, roc, losses,
                                                    aucs, confusion], **private)
            recolour(restored, {roc: "model", losses: "series"})
            give_room(restored, losses, aucs)
            recolour(show(served_estimate, None, [served, reliability], **private), {reliability: "model"})
            show(rejected_views, rejected_choice, [rejected, rejected_choice], **private)
        for show in (demo.load, models_tab.select):
            show(**models_event, **private)  # at page load the versions' change reads the audit log
        # the audit log when the tab is opened: a rejected retrain, a submission or an import changes no
        # version (so no change of the versions reads it)
        models_tab.select(audit_views, None, audit, **private)
        queue_outputs = [queue_table, queue_choice, queue_note]
        demo.load(queue_views, None, queue_outputs, **private)
        submit_tab.select(queue_views, queue_choice, queue_outputs, **private)  # another page's labels
        # a refusal is said in the corner, not as an "Error" badge over the note (it hid its words);
        # the button is off while the image is offered (a click's only sign that it runs)
        offering = dict(concurrency_limit=2, concurrency_id="offer")  # the API's and the page's
        gr.on([], offer, image, offer_note, api_name="offer", api_description=offer.__doc__,  # API only
              **offering)
        offered = pressed_once(offer_button, offer_shown, image, [offer_note, offer_for],
                               show_progress="hidden", **offering, **private)
        # a file changed while it was offered: its note is not left beside the next file
        offered.success(None, [image, offer_for, offer_note], offer_note, js=OFFER_OF_THE_FILE_JS, **private)
        turn_on(offer_button, offered.success(queue_views, queue_choice, queue_outputs, **CHAINED))
        on_again_if_failed(offer_button, offered)  # said in the corner
        queue_choice.change(pending_preview, queue_choice, queue_preview, **private)
        # a refusal (the image labelled or removed on another page, or stored already) is said in the
        # corner, not as an "Error" badge over the dropdowns (it blocked clicks on them), and the pool
        # is shown anew either way; each button is off while its step runs
        for button, step, inputs, outputs in ((queue_submit, label_pending, [queue_choice, queue_label],
                                               [queue_result, queue_label]),
                                              (queue_remove, remove_pending, queue_choice, queue_result)):
            done = pressed_once(button, step, inputs, outputs, concurrency_limit=1, show_progress="hidden",
                                **private)
            listed = done.success(queue_views, queue_choice, queue_outputs, **CHAINED)
            cases_stored(listed)
            turn_on(button, listed, done.failure(queue_views, queue_choice, queue_outputs, **CHAINED))
        gr.on([], queue, None, api_outputs["pending images"], api_name="queue", api_description=queue.__doc__)
        analytics_outputs = [analytics_note, per_day, mix, scores, low, growth, version_auc, history_table]
        for show in (analytics_tab.select, analytics_refresh.click):  # new versions, new labels
            viewed = show(analytics_views, None, analytics_outputs, **private)
            recolour(viewed, {growth: "label", mix: "most likely class", version_auc: "estimate"})
            counted_room(viewed, {per_day: ("day", "predictions"), mix: ("most likely class", "predictions"),
                                 scores: ("malignancy score", "predictions"), growth: ("day", "cases")})
        history_button.click(history_file, None, history_csv, **private)
        gr.on([], history_records, None, api_outputs["your predictions"], api_name="history",
              api_description=history_records.__doc__)
        versions_json.change(audit_views, None, audit, **private)  # after retrains, rollbacks, refresh
        audit_button.click(audit_file, None, audit_csv, api_name="audit", api_description=audit_file.__doc__
                           ).success(None, None, audit_csv, js=visibility_js(1, visible=True), **private)
    return demo


def check_visitor_parameters(blocks: gr.Blocks) -> None:
    """Every event's function takes the signed-in visitor (``gr.OAuthProfile``, ``gr.OAuthToken``) as a
    positional parameter: Gradio fills only those, and one after ``*args`` would always be None (on a
    Space, every visitor anonymous)."""
    for block_fn in blocks.fns.values():
        if block_fn.fn is None:
            continue
        for param in inspect.signature(block_fn.fn).parameters.values():
            if param.kind is param.KEYWORD_ONLY and "OAuth" in str(param.annotation):
                raise RuntimeError(f"{block_fn.fn.__name__}: {param.name} must be a positional parameter "
                                   "for Gradio to pass the signed-in visitor")


demo = build()
check_visitor_parameters(demo)
demo.queue(max_size=64, default_concurrency_limit=2)


def _not_a_cut_stream(record: logging.LogRecord) -> bool:
    """False for uvicorn's error records of the tasks a stop cancels (a page's open event stream, the
    lifespan task): expected then, not errors."""
    cancelled = record.exc_info and record.exc_info[0] is asyncio.CancelledError
    return not (cancelled or record.getMessage().rstrip().endswith("CancelledError"))


def stop_serving(signum: int, frame: object) -> None:
    """SIGTERM (and Ctrl-C) as a KeyboardInterrupt, the one stop Gradio's launch() answers by closing
    its web server; closed at once (open connections, such as a page's event stream, are cut rather
    than waited for: uvicorn would wait for them until Gradio gives up after 5 s). A second signal is
    ignored: it would cut the service's close short."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if demo.server:
        demo.server.force_exit = True
        logging.getLogger("uvicorn.error").addFilter(_not_a_cut_stream)
    raise KeyboardInterrupt


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # request lines can carry signed URLs
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    # a DICOM that no decoder can read: pydicom logs each failed decoder with its traceback, and mammo
    # refuses the file in one line that says so (imaging.read_image)
    logging.getLogger("pydicom.pixels.decoders.base").setLevel(logging.CRITICAL)
    log.info("mammo: %s", service.describe())
    # a stop (Ctrl-C, or SIGTERM as a Space or `docker stop` sends) closes the web server first (no
    # request after this), then the service: the open prediction-log shard and what else waits in
    # the outbox go to the Hub (8 s at most; a stopped container is killed about 10 s after SIGTERM).
    atexit.register(service.close)
    if SETTINGS.follow_seconds:  # a version published by a shell retrain or a Job is served without a restart
        service.follow_registry_every(SETTINGS.follow_seconds)
    signal.signal(signal.SIGTERM, stop_serving)
    signal.signal(signal.SIGINT, stop_serving)
    # ssr_mode off whatever GRADIO_SSR_MODE says (a Space may set it): its Node server would take
    # SIGTERM over (and exit without closing the web server first), and add a process the tests and
    # the memory figures never ran with
    # the example films and the Models tab's files are served from their folders: Gradio serves only files
    # under the working folder or the system's temporary one unless told, and a store elsewhere (a Space's
    # /data), or a start from another folder, failed to offer them (a walk); never MAMMO_HOME, with its cases
    public = [EXAMPLES_FOLDER, *service.registry.files_folders]
    demo.launch(max_file_size=SETTINGS.max_upload_bytes, show_error=True, ssr_mode=False,
                allowed_paths=[str(folder.resolve()) for folder in public],
                blocked_paths=[str(service.registry.rejected_dir.resolve())],  # candidates trained on cases
                css=PAGE_CSS, theme=PAGE_THEME, js=PAGE_JS,
                app_kwargs={"routes": [APIRoute("/health", health_route, methods=["GET"])],
                            "exception_handlers": {FnIndexInferError: unknown_endpoint}})
