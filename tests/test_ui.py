"""The page's parts that need no service (mammo.ui), called as Gradio calls them, without a server."""

import logging
from pathlib import Path

import gradio as gr
import pandas as pd
import pytest

from mammo.errors import MammoError
from mammo.ui.browser_steps import switch_js
from mammo.ui.charts import (
    MEANING_COLOURS,
    OTHER_COLOURS,
    colour_map,
    count_room,
    epoch_room,
    figures_shown,
    plot_figures,
)
from mammo.ui.gallery import EXAMPLES, PHANTOMS, REAL_FILMS, film_caption
from mammo.ui.refusals import clear_errors
from mammo.ui.widgets import in_bounds, text_only
from mammo.views import PERFECT_CALIBRATION


def plot(columns: list[str], *rows) -> dict:
    """A plot's value as the browser sends it back as an event's input."""
    return {"columns": columns, "data": [list(row) for row in rows]}


def test_each_meaning_keeps_its_colour_and_others_take_the_rest_in_order():
    value = plot(["model", "x"], ("v3", 0), (PERFECT_CALIBRATION, 0), ("malignant", 1), ("candidate", 2),
                 ("v3", 3))
    colours = colour_map(value, "model")["color_map"]
    assert list(colours) == ["v3", PERFECT_CALIBRATION, "malignant", "candidate"]
    assert colours["malignant"] == MEANING_COLOURS["malignant"]
    assert [colours["v3"], colours["candidate"]] == list(OTHER_COLOURS[:2])
    assert colours[PERFECT_CALIBRATION] not in {*MEANING_COLOURS.values(), *OTHER_COLOURS}


def test_a_plots_figures_are_its_rows_to_three_places_and_none_for_an_empty_plot():
    chart = gr.ScatterPlot(x="trained", y="AUC", color="estimate")
    sent = chart.postprocess(pd.DataFrame({"trained": ["2026-12-02 15:30"], "AUC": [0.73456],
                                           "estimate": ["out of fold"], "films": [322]})).model_dump()
    table = plot_figures(sent)
    assert table.columns.tolist() == ["trained", "AUC", "estimate", "films"]
    assert table.values.tolist() == [["2026-12-02 15:30", 0.735, "out of fold", 322]]
    assert plot_figures(None).empty
    assert figures_shown(sent)["visible"] and figures_shown(sent)["value"].equals(table)
    assert not figures_shown(None)["visible"] and not figures_shown(chart.postprocess(pd.DataFrame(
        {"trained": [], "AUC": []})).model_dump())["visible"]  # no table for a chart with nothing yet


@pytest.mark.parametrize("step", [lambda p: colour_map(p, "model"), lambda p: epoch_room(p),
                                  lambda p: count_room(p, "day", "count")])
def test_a_plot_without_the_column_is_left_as_it_is(step):
    for value in (None, plot(["other"], (1,))):
        assert step(value) == gr.skip()


def test_a_count_axis_reaches_the_tallest_stack_and_at_least_five():
    stacked = plot(["day", "count"], ("mon", 4), ("mon", 3), ("tue", None), ("tue", 2))
    assert count_room(stacked, "day", "count")["y_lim"] == [0, 7]
    assert count_room(plot(["day", "count"], ("mon", 1)), "day", "count")["y_lim"] == [0, 5]


def test_an_epoch_axis_has_half_an_epoch_each_side_and_a_loss_axis_room_above():
    losses = plot(["epoch", "value"], (1, 0.9), (2, 0.5), (3, None))
    assert epoch_room(losses) == gr.update(x_lim=[0.5, 3.5])
    assert epoch_room(losses, headroom=True)["y_lim"] == pytest.approx([0, 0.972])


def test_every_gallery_film_has_a_caption_and_every_example_a_place():
    assert len(REAL_FILMS) == 8 and PHANTOMS and set(REAL_FILMS + PHANTOMS) <= set(EXAMPLES)
    captions = {film_caption(film) for film in REAL_FILMS}
    assert "Malignant case, right CC" in captions and len(captions) == 8


@pytest.mark.parametrize(("sent", "taken"), [(None, 0.5), ("", 0.5), ("0.25", 0.25), (1, 1)])
def test_a_slider_takes_what_an_api_caller_may_send(sent, taken):
    assert in_bounds(gr.Slider(0, 1, value=0.5), "Opacity").preprocess(sent) == taken


@pytest.mark.parametrize(("sent", "said"), [(2, "Opacity: Value 2 is greater than maximum value 1."),
                                             ("half", "Opacity: a number from 0 to 1, got 'half'."),
                                             (True, "Opacity: a number from 0 to 1, got 'True'."),
                                             ("nan", "Opacity: a number from 0 to 1, got 'nan'.")])
def test_a_slider_refuses_in_words_that_name_the_field(sent, said):
    with pytest.raises(gr.Error) as refused:
        in_bounds(gr.Slider(0, 1, value=0.5), "Opacity").preprocess(sent)
    assert refused.value.message == said


def test_a_whole_number_box_refuses_a_fraction():
    box = in_bounds(gr.Number(value=512, minimum=96, maximum=1024), "Image size", whole=True)
    assert box.preprocess(256) == 256
    with pytest.raises(gr.Error, match="Image size: a whole number from 96 to 1024, got '96.9'"):
        box.preprocess(96.9)


def test_a_text_field_refuses_what_is_not_text():
    box = text_only(gr.Textbox(), "Notes")
    assert box.preprocess("calcifications") == "calcifications"
    with pytest.raises(gr.Error, match="Nothing was stored: Notes must be text, got dict."):
        box.preprocess({"notes": "x"})


def test_a_refusal_keeps_its_words_and_a_bug_is_said_as_unexpected(caplog: pytest.LogCaptureFixture):
    @clear_errors
    def refuses():
        raise MammoError("That file is not an image.")

    @clear_errors
    def breaks():
        raise KeyError("model")

    @clear_errors
    def streams():
        yield 1
        raise MammoError("The Hub is down.")

    with caplog.at_level(logging.WARNING, logger="mammo.app"), pytest.raises(gr.Error) as refused:
        refuses()
    assert refused.value.message == "That file is not an image."
    # a refusal is one line in the log, without a traceback; a bug is logged with its traceback
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in caplog.records] == [
        ("WARNING", "refuses refused: That file is not an image.", None)]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mammo.app"), pytest.raises(gr.Error) as broken:
        breaks()
    assert broken.value.message.startswith("Unexpected error (KeyError)")
    (record,) = caplog.records
    assert record.levelname == "ERROR" and record.exc_info[0] is KeyError
    stream = streams()
    assert next(stream) == 1
    with pytest.raises(gr.Error, match="The Hub is down."):
        next(stream)


def test_each_button_keeps_its_own_place_in_the_browser():
    off, on = switch_js(gr.Button("Predict"), on=False), switch_js(gr.Button("Predict"), on=True)
    assert '["Predict"] = document.activeElement' in off and "interactive: false" in off
    assert 'kept["Predict"]' in on and "interactive: true" in on
    assert '"Submit"' in switch_js(gr.Button("Submit"), on=False) and '"Predict"' not in switch_js(
        gr.Button("Submit"), on=False)


def test_a_runs_upload_folder_is_kept_while_it_lives_and_deleted_after(tmp_path):
    """Each run's own folder, locked while its process lives: the next start deletes an ended run's
    (a killed one's uploads stayed for good), never a live run's, nor anything else in the folder."""
    import subprocess
    import sys

    from mammo.uploads import RUN_PREFIX, own_upload_folder

    ended = subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                            "from mammo.uploads import own_upload_folder; "
                            "folder = own_upload_folder(Path(sys.argv[1])); "
                            "(folder / 'scan.dcm').write_bytes(b'x'); "
                            "print(folder)", str(tmp_path)], capture_output=True, text=True, check=True)
    ended_folder = Path(ended.stdout.strip())
    assert ended_folder.name.startswith(RUN_PREFIX) and (ended_folder / "scan.dcm").is_file()
    other_app = tmp_path / "0123abcd" / "film.png"  # another Gradio app's upload, beside mammo's
    other_app.parent.mkdir()
    other_app.write_bytes(b"x")
    live = own_upload_folder(tmp_path)
    assert not ended_folder.exists() and other_app.is_file()
    again = own_upload_folder(tmp_path)  # a second app started beside this one
    assert live.is_dir() and again.is_dir() and live != again
