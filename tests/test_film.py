"""Film models: the patch network pooled over a film; a film the size of one patch scores like the
patch; calibration survives save/load; timm alone loads the network; Predictor's lesion map."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import load_file
from synthetic import synthetic_mammogram

from mammo.choices import LESION_MAP
from mammo.film import FilmModel, HeadConfig
from mammo.model import build, load, save
from mammo.predict import Predictor

LABELS = ["normal", "benign", "malignant"]


@pytest.fixture(scope="module")
def patch_model() -> FilmModel:
    torch.manual_seed(0)
    net = build("test_efficientnet", 3, init="none").eval()
    return FilmModel(net, HeadConfig(kind="patch", patch_cells=2, top_k=3)).eval()


def test_dense_map_at_the_patch_size_equals_the_patch_classifier(patch_model: FilmModel) -> None:
    x = torch.randn(2, 1, 64, 64)  # 2 x 2 cells: the window at the last position covers all
    with torch.inference_mode():
        features = patch_model.forward_features(x)
        dense = patch_model.patch_probabilities(features)
        direct = patch_model.net(x).softmax(dim=1)
    assert dense.shape == (2, 3, 2, 2)
    assert torch.allclose(dense[:, :, -1, -1], direct, atol=1e-5)


def test_scores_pool_the_top_k_and_calibration_orders_them(patch_model: FilmModel) -> None:
    x = torch.randn(1, 1, 256, 256)
    with torch.inference_mode():
        features = patch_model.forward_features(x)
        maps = patch_model.patch_probabilities(features)[:, 1:].flatten(2)
        scores = patch_model.scores(features)
    expected = torch.logit(maps.topk(3, dim=-1).values.mean(-1))
    assert scores.shape == (1, 2) and torch.allclose(scores, expected, atol=1e-4)


def test_calibration_is_saved_and_timm_loads_the_network(patch_model, tmp_path) -> None:
    patch_model.set_calibration([[-1.0, -2.0], [0.5, 0.0], [0.0, 3.0]], [0.1, 0.2, -0.3])
    save(patch_model, tmp_path, LABELS, 128, {"version": "vt", "preprocess": {"image_size": 128}})
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["mammo"]["head"]["kind"] == "patch" and config["mammo"]["head"]["bias"] == [0.1, 0.2, -0.3]
    loaded, _ = load(tmp_path)
    x = torch.randn(1, 1, 128, 128)
    with torch.inference_mode():
        assert isinstance(loaded, FilmModel)
        assert torch.allclose(loaded(x), patch_model(x), atol=1e-5)
        plain = timm.create_model("test_efficientnet", pretrained=False, num_classes=3, in_chans=1)
        plain.load_state_dict(load_file(tmp_path / "model.safetensors"))  # strict: the network only
        assert torch.allclose(plain.eval()(x), patch_model.net(x), atol=1e-5)


@pytest.fixture(scope="module")
def patch_folder(patch_model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("patch_model")
    patch_model.set_calibration([[-1.0, -1.0], [1.0, 0.0], [0.0, 1.0]], [0.0, 0.0, 0.0])
    return save(patch_model, folder, LABELS, 128,
                {"version": "vpatch", "preprocess": {"image_size": 128, "crop": True, "orient": True},
                 "threshold": 0.3})


def test_predictor_draws_the_lesion_map_and_calibrated_probabilities(patch_folder) -> None:
    predictor = Predictor(patch_folder)
    grey = synthetic_mammogram(300, 200)
    result = predictor.predict(grey, method=LESION_MAP)
    assert result.method == LESION_MAP and result.details()["calibrated"] is True
    assert result.heatmap.shape == grey.shape and 0 <= result.heatmap.min() <= result.heatmap.max() <= 1
    tensor, _ = predictor.prepare(grey)
    with torch.inference_mode():
        expected = predictor.model(tensor[None]).softmax(dim=1)[0].numpy()
    assert np.allclose(list(result.probabilities.values()), expected, atol=1e-5)
    grad = predictor.predict(grey, method="Grad-CAM")  # through the pooling, by pytorch_grad_cam
    assert grad.method == "Grad-CAM" and grad.heatmap.max() > 0
    assert np.allclose(list(grad.probabilities.values()), expected, atol=1e-5)


def test_a_model_without_a_lesion_map_falls_back_to_grad_cam(tiny_model_dir) -> None:
    result = Predictor(tiny_model_dir).predict(synthetic_mammogram(), method=LESION_MAP)
    assert result.method == "Grad-CAM" and result.details()["calibrated"] is False
    with pytest.raises(ValueError, match="Unknown heat-map method"):
        Predictor(tiny_model_dir).predict(synthetic_mammogram(), method="X-ray vision")


def test_only_positions_inside_the_breast_are_pooled() -> None:
    torch.manual_seed(0)
    net = build("test_efficientnet", 3, init="none").eval()
    model = FilmModel(net, HeadConfig(kind="patch", patch_cells=3, top_k=2, min_coverage=0.9)).eval()
    film = torch.zeros(1, 1, 256, 256)
    film[..., :, :128] = 0.6  # breast on the left half, zero (background) on the right
    x = (film - 0.5) / 0.5
    with torch.inference_mode():
        features = model.forward_features(x)
        pooled = model.positions(x, features)
        assert pooled.shape == (1, 8, 8)
        # 3 x 3 windows: fully inside for columns 1-2 (column 3's reaches the background) and
        # rows 1-6; windows reaching past the film's edge are not pooled either
        assert pooled[0, 1:7, 1:3].all() and pooled.sum() == 12
        maps = model.patch_probabilities(features)
        expected = torch.logit(maps[:, 1:, 1:7, 1:3].flatten(2).topk(2, dim=-1).values.mean(-1))
        assert torch.allclose(model.scores(features, pooled), expected, atol=1e-4)
        assert torch.allclose(model(x), model.calibration(expected), atol=1e-4)
    assert FilmModel(net, HeadConfig(kind="patch")).positions(x, features) is None  # 0: all


@pytest.mark.parametrize("axis", ["horizontal", "vertical"])
def test_test_time_mirror_averages_the_two_films_scores_when_scoring_only(patch_model: FilmModel, axis: str,
                                                                          tmp_path) -> None:
    """``head.mirror``: in eval mode a film's scores are the mean of its own and its mirror image's
    (then calibrated); in training the film is scored as it is; saved, loaded and served alike."""
    head = HeadConfig(**{**patch_model.head.to_dict(), "mirror": axis})
    mirrored = FilmModel(copy.deepcopy(patch_model.net), head).eval()  # its own copy: train() below
    x = torch.rand(2, 1, 128, 96)
    dim = -1 if axis == "horizontal" else -2
    with torch.inference_mode():
        own, flipped = patch_model.film_scores(x), patch_model.film_scores(x.flip(dim))
        assert not torch.allclose(own, flipped)  # a random film is not its own mirror image
        assert torch.allclose(mirrored.film_scores(x), (own + flipped) / 2, atol=1e-6)
        assert torch.allclose(mirrored(x), patch_model.calibration((own + flipped) / 2), atol=1e-6)
        mirrored.train()  # training scores the film as it is (batch statistics: compare in train mode)
        assert torch.allclose(mirrored.film_scores(x), mirrored._scores_as_is(x), atol=1e-6)
    mirrored.eval()
    preprocess = {"image_size": 128, "crop": True, "orient": True}
    folder = save(mirrored, tmp_path, LABELS, 128, {"version": "vm", "preprocess": preprocess})
    assert json.loads((folder / "config.json").read_text())["mammo"]["head"]["mirror"] == axis
    predictor = Predictor(folder)
    assert predictor.mirror == axis
    grey = synthetic_mammogram(300, 200)
    tensor, _ = predictor.prepare(grey)
    with torch.inference_mode():
        expected = mirrored(tensor[None]).softmax(dim=1)[0].numpy()
    for method in (LESION_MAP, "Grad-CAM"):  # what is shown is the mirror-averaged film, whatever the map
        result = predictor.predict(grey, method=method)
        assert np.allclose(list(result.probabilities.values()), expected, atol=1e-4)
    with pytest.raises(ValueError, match="unknown test-time mirror"):
        HeadConfig(mirror="diagonal")
