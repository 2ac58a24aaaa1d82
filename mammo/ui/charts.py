"""The page's plots: one colour per meaning in every tab, and axes redrawn to fit each new value (a
second step after it: Gradio draws limits sent with a value over the old value)."""

import functools

import gradio as gr
import pandas as pd

from mammo import views
from mammo.ui.events import CHAINED
from mammo.ui.look import PLOT_MIN_WIDTH
from mammo.views import BASE_FILM_CASES

__all__ = ["MEANING_COLOURS", "SOURCE_COLOURS", "auc_plot", "colour_map",
           "count_room", "counted_room", "epoch_room", "figures_shown", "figures_tables", "give_room",
           "loss_plot", "losses_shown", "plot_column", "plot_figures", "recolour", "shown_if_any"]

REFERENCE_COLOUR = "#888888"  # the diagonal of perfect calibration: grey, the same in every tab


# categories with one colour in every tab and chart: the classes, and where training images come from
# (Vega's "tableau10" colours)
MEANING_COLOURS = {"normal": "#54a24b", "benign": "#4c78a8", "malignant": "#e45756",
                   "base": "#bab0ac", "cases": "#f58518", BASE_FILM_CASES: "#9d755d"}
SOURCE_COLOURS = {name: MEANING_COLOURS[name] for name in ("base", "cases", BASE_FILM_CASES)}
# any other category (models, estimates, loss series), in order of appearance: none of those colours
OTHER_COLOURS = ("#b279a2", "#72b7b2", "#ff9da6", "#eeca3b", "#393b79", "#8c6d31")


def colour_map(plot: dict | None, column: str):
    """A colour for each category of the ``column`` of the value a plot shows. Gradio's plots keep the
    categories of the value they were first drawn with (new data with other ones is not drawn, and
    the old legend stays) until their colour map changes; sent with the new value, the redraw uses
    the old value, so this is a second step, after the value (see ``recolour``)."""
    values = plot_column(plot, column)
    if values is None:
        return gr.skip()
    names = list(dict.fromkeys(values))
    colours = {views.PERFECT_CALIBRATION: REFERENCE_COLOUR}
    colours |= {name: MEANING_COLOURS[name] for name in names if name in MEANING_COLOURS}
    others = [name for name in names if name not in colours]  # in order of appearance
    colours |= {name: OTHER_COLOURS[i % len(OTHER_COLOURS)] for i, name in enumerate(others)}
    return gr.update(color_map={name: colours[name] for name in names})


def plot_column(plot: dict | None, column: str) -> list | None:
    """A column of a plot's value as the browser has it (a plot as an event's input); None when the
    plot holds no such column."""
    if not plot or column not in plot["columns"]:
        return None
    index = plot["columns"].index(column)
    return [row[index] for row in plot["data"]]


def plot_figures(plot: dict | None) -> pd.DataFrame:
    """A plot's value as the browser has it, as a table with its fractions to three places (an empty
    table for a plot with nothing yet)."""
    if not plot:
        return pd.DataFrame()
    return pd.DataFrame(plot["data"], columns=plot["columns"]).round(3)


def figures_shown(plot: dict | None) -> dict:
    """A figures table's update: the plot's figures, hidden while it has none (a walk read an empty
    "Validation AUC per epoch" table under a run that has no such chart)."""
    figures = plot_figures(plot)
    return gr.update(value=figures, visible=not figures.empty)


def figures_tables(*plots: gr.components.NativePlot) -> None:
    """Under ``plots``: a closed accordion with each one's figures as a table, named by the plot and
    kept in step with it. A chart gave its figures only on hover (none to a keyboard or a screen
    reader: an accessibility walk) and told its series apart by colour alone."""
    what = "the chart above, as a table" if len(plots) == 1 else "the charts above, as tables"
    with gr.Accordion(f"The figures of {what}", open=False):
        for plot in plots:
            table = gr.Dataframe(label=plot.label, interactive=False, wrap=True, visible=False)
            plot.change(figures_shown, plot, table, api_visibility="private", show_progress="hidden")


def recolour(event, plots: dict) -> None:
    """After ``event`` gave ``plots`` (plot -> its colour column) new values: their colour maps."""
    for plot, column in plots.items():
        event.then(functools.partial(colour_map, column=column), plot, plot, **CHAINED)


def epoch_room(plot: dict | None, headroom: bool = False):
    """Half an epoch of room at each end of a per-epoch plot's x axis (Gradio's axis runs from the
    first point to the last, cutting both in half) and, with ``headroom``, room above its highest
    value (a loss axis ends at it, cutting that point in half). A second step, after the value
    (``give_room``): limits sent with a new value are drawn over the old value."""
    epochs = plot_column(plot, "epoch")
    if not epochs:
        return gr.skip()
    room = {"x_lim": [min(epochs) - 0.5, max(epochs) + 0.5]}
    values = [v for v in plot_column(plot, "value") or [] if v is not None]
    if headroom and values:
        room["y_lim"] = [0, 1.08 * max(max(values), 1e-6)]
    return gr.update(**room)


COUNT_AXIS_TOP = 5  # a count axis reaches at least this: Vega's ~5 ticks then fall on whole numbers


def count_room(plot: dict | None, x: str, y: str):
    """A count plot's axis from 0 to its tallest stack (the ``y`` counts summed per ``x``), at least
    :data:`COUNT_AXIS_TOP` (a lower top gives ticks at halves: "0.5 predictions"; with no count yet,
    Vega draws a lone "0.000000"). A second step, after the value, as :func:`epoch_room` is."""
    keys, counts = plot_column(plot, x), plot_column(plot, y)
    if keys is None or counts is None:
        return gr.skip()
    stacks: dict[str, float] = {}
    for key, count in zip(keys, counts, strict=True):
        stacks[key] = stacks.get(key, 0) + (count or 0)
    return gr.update(y_lim=[0, max([COUNT_AXIS_TOP, *stacks.values()])])


def counted_room(event, plots: dict) -> None:
    """After ``event`` gave count ``plots`` (plot -> its x and y columns) new values: their axes
    (:func:`count_room`)."""
    for plot, (x, y) in plots.items():
        event.then(functools.partial(count_room, x=x, y=y), plot, plot, **CHAINED)


def give_room(event, losses, aucs) -> None:
    """After ``event`` gave a loss plot and an AUC plot new values: their axes (:func:`epoch_room`;
    the AUC axis keeps its 0-1 scale)."""
    event.then(functools.partial(epoch_room, headroom=True), losses, losses, **CHAINED)
    event.then(epoch_room, aucs, aucs, **CHAINED)


def loss_plot() -> gr.ScatterPlot:
    return gr.ScatterPlot(x="epoch", y="value", color="series", y_title="loss",
                          label="Loss per epoch", min_width=PLOT_MIN_WIDTH)


def auc_plot() -> gr.ScatterPlot:
    return gr.ScatterPlot(x="epoch", y="value", color="series", y_lim=[0, 1], y_title="AUC",
                          min_width=PLOT_MIN_WIDTH,
                          label="Validation AUC per epoch (malignant vs rest: the early-stopping score)")


def losses_shown(frame, aucs):
    """The loss plot, titled for what it holds (``aucs``: the validation AUC plot's value); its x axis
    comes in a second step (:func:`give_room`)."""
    return gr.update(value=frame, label=views.loss_plot_title(frame, aucs))


def shown_if_any(frame: pd.DataFrame) -> dict:
    """A plot's new value, hidden while it has no row (the validation AUC plot of a run without
    validation films; an Analytics plot with nothing yet, which the tab's note names)."""
    return gr.update(value=frame, visible=len(frame) > 0)

