"""The serving floor for ``bench_serving.py``: /predict's inputs, outputs and queue settings, no model.

It reads the upload with mammo's reader and returns the image at display size as the "overlay",
fixed probabilities and a small details dict: what any /predict must at least do.

    python scripts/floor_app.py     # serves on GRADIO_SERVER_PORT (7860 by default); no options
"""

import argparse
import sys
from pathlib import Path

import gradio as gr
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mammo.choices import DEFAULT_METHOD, HEATMAP_METHODS  # noqa: E402
from mammo.imaging import read_image  # noqa: E402
from mammo.predict import DISPLAY_SIDE, OVERLAY_FORMAT  # noqa: E402
from mammo.preprocess import fit_within  # noqa: E402


def predict(image: str, method: str = DEFAULT_METHOD, opacity: float = 0.4):
    grey = fit_within(read_image(image), DISPLAY_SIDE)
    rgb = np.repeat(np.uint8(255 * grey)[..., None], 3, axis=2)
    probabilities = {"normal": 0.5, "benign": 0.3, "malignant": 0.2}
    return probabilities, rgb, {"model_version": "floor", "probabilities": probabilities}


with gr.Blocks() as demo:
    image = gr.File(type="filepath")
    method = gr.Dropdown(list(HEATMAP_METHODS), value=DEFAULT_METHOD, allow_custom_value=True)
    opacity = gr.Slider(0, 1, value=0.4)
    button = gr.Button()
    outputs = [gr.Label(num_top_classes=3), gr.Image(type="numpy", format=OVERLAY_FORMAT), gr.JSON()]
    button.click(predict, [image, method, opacity], outputs, api_name="predict", concurrency_limit=2)
demo.queue(max_size=64, default_concurrency_limit=2)

if __name__ == "__main__":
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter).parse_args()
    demo.launch()
