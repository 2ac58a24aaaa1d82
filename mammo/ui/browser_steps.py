"""Steps that run in the visitor's browser, not on the server: results shown only beside their file,
buttons off while their click runs, the keyboard's place kept, the opacity clamped; and the script the
page runs once on load."""

import json

import gradio as gr

from mammo.ui.look import FILE_IN_HINT, NO_FILE_HINT, OFFER_EXPLAINED

__all__ = ["CLAMP_OPACITY_JS", "CLICK_PREDICT_JS", "CLICK_PREDICT_PICKED_JS", "DESELECT_JS",
           "HINT_OF_THE_FILE_JS", "OFFER_OF_THE_FILE_JS", "OPACITY_RANGE", "PAGE_JS",
           "PREVIEW_OF_THE_FILE_JS", "REDRAW_CLAMPED_JS", "SAME_FILE_JS",
           "SCROLL_TO_RESULT_JS", "hide_js", "on_with_a_file_js", "submitted_js", "switch_js",
           "visibility_js"]


# Another file (or none) in the upload box: the previous file's results (probabilities, heat map,
# score, details), report and full-size heat map are hidden at once, in the browser (a server call to
# clear them could land after the new file's prediction and wipe it; and Gradio 6.31 does not apply an
# empty value sent from the browser). A result is shown only beside the file it is for: each result
# event also returns that file's path into a hidden box, and a browser step shows the result only
# while that file is still in the upload box, so a result that comes after its file was replaced
# stays hidden. (Cancelling it cannot do this: Gradio 6.31 sends a request's /cancel without its event
# id while the request has only just been sent, and the server refuses it.)
SAME_FILE_JS = "(file, resultFile) => ({__type__: 'update', visible: !!file && file.path === resultFile})"


# a preview's verdict on its file beside that file only: its actions (Offer) if it can be read, why
# it cannot be if not; neither once another file is in the box
PREVIEW_OF_THE_FILE_JS = ("(file, previewedFile, why) => {"
                          " const same = !!file && file.path === previewedFile;"
                          " return [{__type__: 'update', visible: same && !why},"
                          " {__type__: 'update', visible: same && !!why}]; }")


# what to do where the results come: upload a file, or press Predict for the file in the box; nothing
# beside a file that cannot be read or whose result is shown. Run on each of those changes, from what
# the page holds then (Gradio ran the step of a new file after its preview's step).
HINT_OF_THE_FILE_JS = ("(file, previewedFile, why, resultFile) => {"
                       " const same = !!file && file.path === previewedFile;"
                       " const shown = !!file && file.path === resultFile;"
                       " return {__type__: 'update', visible: !(same && !!why) && !shown,"
                       f" value: file ? {json.dumps(FILE_IN_HINT)} : {json.dumps(NO_FILE_HINT)}}}; }}")


# the offer's note, put back to its explanation when the file it was made for is no longer the one shown
OFFER_OF_THE_FILE_JS = (f"(file, offeredFile, note) => !!file && file.path === offeredFile ? note : "
                        f"{json.dumps(OFFER_EXPLAINED)}")


# a new result out of sight is brought into view: on a phone it lay 900 px below the Predict button,
# under the gallery, and after a gallery pick on a desktop above the screen's top (a walk)
# and the keyboard's place goes to it, so that a screen reader reads the verdict (nothing said that a
# result had come: an accessibility walk), unless the visitor has moved on from what asked for it
# (the Predict button or a gallery film, kept by PAGE_JS)
SCROLL_TO_RESULT_JS = ("() => setTimeout(() => { const flag = document.getElementById('review-flag');"
                       " if (!flag || !flag.offsetParent) return;"
                       " const top = flag.getBoundingClientRect().top;"
                       " if (top < 0 || top > 0.7 * window.innerHeight)"
                       " flag.scrollIntoView({behavior: 'smooth', block: 'start'});"
                       " const now = document.activeElement;"
                       " if (!now || now === document.body || now === window.mammoAsked) {"
                       " flag.tabIndex = -1; flag.focus({preventScroll: true}); } }, 100)")


# a browser-only step that clicks the Predict button (a gallery pick is predicted as a click is)
CLICK_PREDICT_JS = "() => { document.getElementById('predict-button').click(); }"
# a gallery film's highlight taken off; and Predict clicked for a stored case once one was picked
DESELECT_JS = "() => ({__type__: 'update', selected_index: null})"
CLICK_PREDICT_PICKED_JS = "(picked) => { if (picked) document.getElementById('predict-button').click(); }"


# an opacity typed out of range in the slider's box is taken as the nearest end, as a slider does, in
# the box and in the redraw that the typing starts; a box emptied while typing is left as it is
OPACITY_RANGE = (0, 1)
CLAMP_OPACITY = (f"(opacity === null || opacity === '' || isNaN(Number(opacity))) ? opacity : "
                 f"Math.min({OPACITY_RANGE[1]}, Math.max({OPACITY_RANGE[0]}, Number(opacity)))")
CLAMP_OPACITY_JS = f"(opacity) => {CLAMP_OPACITY}"
REDRAW_CLAMPED_JS = f"(image, method, opacity) => [image, method, {CLAMP_OPACITY}]"


def switch_js(button: gr.Button, on: bool) -> str:
    """A browser-only step that turns ``button`` (its one output) on or off. Switched off, a focused
    button loses the keyboard's place to the page's top (the next Tab started there: an accessibility
    walk); switched on, it gets it back (without scrolling to it), unless the visitor has moved on.
    Each button keeps its own (by its label): another button's end gives none to it."""
    key = _key_of(button)
    if not on:
        return ("() => { (window.mammoPressed = window.mammoPressed || {})"
                f"[{key}] = document.activeElement; return [{{__type__: 'update', interactive: false}}]; }}")
    return f"() => {{ {_place_back(key, 'true')} return [{{__type__: 'update', interactive: true}}]; }}"


def on_with_a_file_js(button: gr.Button) -> str:
    """A browser-only step that turns ``button`` (its one output) on when its one input holds a file,
    off when it is empty; off while its click's run is under way (:func:`switch_js` switched it off:
    a file put in meanwhile turned it on, and a second click started a second run; a review)."""
    key = _key_of(button)
    return ("(value) => [{__type__: 'update', interactive: value !== null && value !== undefined"
            f" && !({key} in (window.mammoPressed || {{}}))}}]")


def submitted_js(button: gr.Button, receipt_id: str) -> str:
    """A browser-only step after a submission by ``button`` (its one output; its input, the form's
    image): with an image still in the form (a refusal, to be put right) the button is on again and has
    the keyboard's place back, as :func:`switch_js` gives it; with the form emptied (a stored case) it
    stays off until the next image, and the keyboard's place goes to the receipt (element
    ``receipt_id``), which a screen reader then reads."""
    key = _key_of(button)
    receipt = f"document.getElementById({json.dumps(receipt_id)})"
    return (f"(image) => {{ const on = image !== null && image !== undefined; const receipt = {receipt};"
            " if (!on && receipt) receipt.setAttribute('tabindex', '-1');"
            f" {_place_back(key, 'on', 'receipt')} return [{{__type__: 'update', interactive: on}}]; }}")


def _key_of(button: gr.Button) -> str:
    """The JS key under which ``window.mammoPressed`` keeps what had the keyboard's place when
    ``button`` was switched off: its label."""
    return json.dumps(str(button.value))


def _place_back(key: str, on: str, elsewhere: str = "null") -> str:
    """JS giving the keyboard's place back to the element that had it when button ``key`` was switched
    off where ``on`` is true, else to ``elsewhere``, unless the visitor has moved on meanwhile."""
    return (f"const kept = window.mammoPressed || {{}}; const pressed = kept[{key}]; delete kept[{key}];"
            f" const target = ({on}) ? pressed : {elsewhere}; setTimeout(() => {{"
            " const now = document.activeElement;"
            " if (target && target.isConnected && (!now || now === document.body))"
            " target.focus({preventScroll: true}); }, 100);")


def visibility_js(count: int, visible: bool) -> str:
    """A browser-only step that shows (or hides) its ``count`` outputs."""
    return f"() => Array({count}).fill({{__type__: 'update', visible: {str(visible).lower()}}})"


def hide_js(count: int) -> str:
    """A browser-only step that hides its ``count`` outputs."""
    return visibility_js(count, visible=False)


# run once when the page loads: what a person clicked to ask for a prediction is kept (the verdict
# takes the keyboard's place from it, see SCROLL_TO_RESULT_JS); the gallery's films are named by their
# captions to a screen reader (Gradio names each "Thumbnail 1 of 8", over the caption: an
# accessibility walk), again whenever Gradio draws them anew; and each accordion's header says whether
# it is open (aria-expanded)
PAGE_JS = """() => {
  document.addEventListener('click', (event) => {  // a person's click (or Enter) asking for a prediction
    const on = event.isTrusted && event.target instanceof Element ? event.target : null;
    const asked = on && on.closest('#predict-button, #real-films button');
    if (asked) window.mammoAsked = asked;
  }, true);
  const films = () => document.querySelectorAll('#real-films button.thumbnail-item');
  const name = () => {
    films().forEach((film, i, all) => {
      const caption = film.querySelector('.caption-label');
      const said = caption && `${caption.textContent.trim()} (film ${i + 1} of ${all.length})`;
      if (said && film.getAttribute('aria-label') !== said) film.setAttribute('aria-label', said);
    });
    // an accordion's header says whether it is open (Gradio's says nothing to a screen reader)
    document.querySelectorAll('.gr-accordion > button.label-wrap').forEach((header) => {
      const open = String(header.classList.contains('open'));
      if (header.getAttribute('aria-expanded') !== open) header.setAttribute('aria-expanded', open);
    });
  };
  new MutationObserver(name).observe(document.body, {childList: true, subtree: true, attributes: true,
                                                     attributeFilter: ['aria-label', 'class']});
  name();
}"""
