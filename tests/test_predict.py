"""Predictor: probabilities and heat map from one pass, thread safety, input aspect kept."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch
from helpers import SERVED
from synthetic import synthetic_mammogram

from mammo.imaging import ImageError, encode_png
from mammo.predict import Predictor


def test_predict_on_a_non_square_image(tiny_model_dir) -> None:
    predictor = Predictor(tiny_model_dir)
    grey = synthetic_mammogram(height=300, width=200)
    result = predictor.predict(encode_png(grey))
    assert set(result.probabilities) == {"normal", "benign", "malignant"}
    assert abs(sum(result.probabilities.values()) - 1) < 1e-5
    assert result.label == max(result.probabilities, key=result.probabilities.get)
    assert result.heatmap.shape == (300, 200)
    assert result.overlay.shape == (300, 200, 3)
    assert result.model_version == "vtest" and result.threshold == 0.3
    assert result.malignancy == result.probabilities["malignant"]
    assert result.above_threshold == (result.malignancy >= 0.3)
    details = result.details()
    # one scale for the score and its cut-off (0-100), full precision in the JSON
    assert details["malignancy_score"] == 100 * result.malignancy and details["threshold"] == 30.0
    assert details["above_threshold"] == (details["malignancy_score"] >= details["threshold"])


def test_the_breast_mask_is_found_once_per_image_for_the_crop_and_the_film_check(
        tiny_model_dir, monkeypatch: pytest.MonkeyPatch) -> None:
    """The crop and the not-like-a-film check share one search for the breast."""
    import mammo.preprocess

    predictor = Predictor(tiny_model_dir)
    searches, search = [], mammo.preprocess._breast_mask
    monkeypatch.setattr(mammo.preprocess, "_breast_mask",
                        lambda small: searches.append(small) or search(small))
    result = predictor.predict(synthetic_mammogram(height=300, width=200))
    assert len(searches) == 1 and result.film_doubt is None


def test_one_pass_probabilities_equal_a_plain_forward(tiny_model_dir) -> None:
    predictor = Predictor(tiny_model_dir)
    grey = synthetic_mammogram()
    with_cam = predictor.predict(grey)
    tensor, _ = predictor.prepare(grey)
    plain = predictor.probabilities(tensor[None])[0]
    assert np.allclose(list(with_cam.probabilities.values()), plain, atol=1e-6)


def test_other_methods_and_no_heat_map(tiny_model_dir) -> None:
    predictor = Predictor(tiny_model_dir)
    grey = synthetic_mammogram()
    assert predictor.predict(grey, method="EigenCAM").heatmap.shape == grey.shape
    (bare,) = predictor.predict_many([grey], method=None)
    assert bare.heatmap is None and bare.overlay is None


def test_batch_equals_single_and_threads_agree(tiny_model_dir) -> None:
    predictor = Predictor(tiny_model_dir)
    images = [synthetic_mammogram(right=bool(i % 2)) * (0.7 + 0.1 * i) for i in range(3)]
    batch = predictor.predict_many(images)
    for image, result in zip(images, batch, strict=True):
        single = predictor.predict(image)
        assert np.allclose(list(single.probabilities.values()),
                           list(result.probabilities.values()), atol=1e-5)
        assert np.abs(single.heatmap - result.heatmap).max() < 1e-4
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: predictor.predict(images[i % 3]), range(16)))
    for i, result in enumerate(results):
        assert np.allclose(list(result.probabilities.values()),
                           list(batch[i % 3].probabilities.values()), atol=1e-5)


def test_bad_input_is_an_image_error(tiny_model_dir) -> None:
    with pytest.raises(ImageError):
        Predictor(tiny_model_dir).predict(b"not an image")


def test_real_mammogram(tiny_model_dir, mias) -> None:
    path = next((mias / "malignant").glob("*.png"))
    result = Predictor(tiny_model_dir).predict(path)
    assert result.heatmap.shape == (512, 512)
    assert 0 <= result.heatmap.min() and result.heatmap.max() <= 1 + 1e-6


def test_a_large_film_is_drawn_at_display_size_and_its_full_heat_map_on_request(tiny_model_dir) -> None:
    predictor = Predictor(tiny_model_dir)
    big = synthetic_mammogram(height=4096, width=2400)
    result = predictor.predict(big, method="Grad-CAM")
    assert result.image_shape == (4096, 2400)
    assert result.heatmap.shape == (2048, 1200) and result.overlay.shape == (2048, 1200, 3)
    full = result.full_heatmap()
    assert full.shape == (4096, 2400) and 0 <= full.min() and full.max() <= 1
    # the full map is the display map scaled up: where the display map is cold, so is the full one
    assert np.allclose(full[::2, ::2].mean(), result.heatmap.mean(), atol=0.01)
    # the same film already small enough is drawn at its own size, with nothing to scale
    small = predictor.predict(big[::2, ::2].copy(), method="Grad-CAM")
    assert small.heatmap.shape == (2048, 1200) and small.full_heatmap() is small.heatmap
    assert small.image_sha256 != result.image_sha256  # the hash is of the pixels as uploaded


def test_a_model_of_small_images_reads_them(tiny_model_dir, tmp_path) -> None:
    """The ``min_side`` a model was trained with (28 px BreastMNIST) is the one it predicts with."""
    import json
    import shutil

    small = encode_png(synthetic_mammogram(height=28, width=28))
    with pytest.raises(ImageError, match="too small"):
        Predictor(tiny_model_dir).predict(small)
    folder = tmp_path / "small_images"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["mammo"].setdefault("preprocess", {})["min_side"] = 16
    (folder / "config.json").write_text(json.dumps(config))
    predictor = Predictor(folder)
    assert predictor.min_side == 16
    assert predictor.predict(small).heatmap.shape == (28, 28)


@pytest.mark.parametrize("film", ["cbis_ddsm_malignant_rcc.png", "cbis_ddsm_benign_lmlo.png"])
def test_uncertainty_is_the_spread_between_the_film_and_its_mirror_image(film: str) -> None:
    from app_server import ROOT

    from mammo.config import PACKAGE_WEIGHTS
    from mammo.predict import HIGH_UNCERTAINTY, load_image

    predictor = Predictor(PACKAGE_WEIGHTS / SERVED)  # the served model, on a real CBIS-DDSM film
    image = load_image(ROOT / "examples" / film)
    result = predictor.predict(image, method="Lesion map")
    tensor, _ = predictor.prepare(image.grey)
    upright = predictor.probabilities(tensor[None])
    mirrored = predictor.probabilities(tensor[None].flip(-2))
    expected = 100 * np.abs(upright - mirrored).max()
    uncertainty = result.details()["uncertainty"]
    assert uncertainty["spread"] == pytest.approx(expected, abs=1e-3) and 0 <= expected <= 100
    assert uncertainty["high"] == (expected >= HIGH_UNCERTAINTY) and "mirror" in uncertainty["method"]
    # the served scores are the upright film's: the mirror image only measures the spread
    assert np.allclose(list(result.probabilities.values()), upright[0], atol=1e-5)
    without = Predictor(PACKAGE_WEIGHTS / SERVED, uncertainty=False).predict(image)
    assert without.details()["uncertainty"] is None


@pytest.mark.parametrize("film", ["cbis_ddsm_malignant_rcc.png", "cbis_ddsm_benign_lmlo.png"])
def test_a_cam_of_the_served_model_lies_where_its_score_reads(film: str) -> None:
    """The served model's score pools only the breast's patch positions (reading the cells of their
    windows): a CAM method draws there and nowhere else (on these real films most of Grad-CAM's map
    and all of EigenCAM's lay outside them, where the score never reads), and drawing one changes no
    probability."""
    import torch.nn.functional as F
    from app_server import ROOT

    from mammo.config import PACKAGE_WEIGHTS
    from mammo.predict import load_image

    predictor = Predictor(PACKAGE_WEIGHTS / SERVED, uncertainty=False)
    image = load_image(ROOT / "examples" / film)
    tensor, _ = predictor.prepare(image.grey)
    batch = tensor[None]
    model = predictor.model
    with torch.inference_mode():
        cells = model.read_cells(model.positions(batch, model.forward_features(batch)))
    reads = F.interpolate(cells[:, None].float(), size=batch.shape[-2:], mode="bilinear")[0, 0].numpy() > 0
    assert 0 < reads.mean() < 0.5
    plain = predictor.predict(image, method=None).probabilities
    for method in ("Grad-CAM", "EigenCAM", "LayerCAM"):
        probs, cams = predictor._forward(batch, method)
        assert np.allclose(probs[0], list(plain.values()), atol=1e-5)
        assert cams[0][~reads].max() == 0 and cams[0][reads].max() == pytest.approx(1, abs=1e-4), method
