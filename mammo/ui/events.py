"""How the page's events are chained: a step run again while it runs, a button off while its click runs
and on again after it, or after its failure."""

import gradio as gr

from mammo.ui.browser_steps import switch_js

__all__ = ["CHAINED", "on_again_if_failed", "pressed_once", "turn_on"]

# A step chained after an event, triggered again while it still runs (a second prediction, a second
# submission, a second value for a plot): Gradio's default ("once") drops the new run, which left the
# earlier file's history or the earlier counts on the page; "always_last" runs the latest once the
# first ends.
CHAINED = dict(api_visibility="private", trigger_mode="always_last")


def pressed_once(button: gr.Button, fn, inputs, outputs, **options):
    """``fn`` run by a click on ``button``, which is off from the click (in the browser, at once): a
    double click runs it once. :func:`turn_on` turns it on again."""
    return button.click(None, None, button, js=switch_js(button, on=False), api_visibility="private").then(
        fn, inputs, outputs, **options)


def turn_on(button: gr.Button, *ended) -> None:
    """``button`` on again after each event of ``ended`` (a failed event's ``.then`` does not run:
    pass the step that handles its failure)."""
    for event in ended:
        event.then(None, None, button, js=switch_js(button, on=True), api_visibility="private")


def on_again_if_failed(button: gr.Button, event) -> None:
    """``button`` on again when ``event`` fails (its refusal said in the corner): :func:`turn_on` for
    the failure, which no ``.then`` follows."""
    event.failure(None, None, button, js=switch_js(button, on=True), api_visibility="private")
