"""Heat maps: the one-pass Grad-CAM equals pytorch_grad_cam's GradCAM; overlays."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mammo.explain import CAM_METHODS, has_linear_head, one_pass_cam, overlay, package_cam
from mammo.model import build


@pytest.mark.parametrize("arch", ["test_efficientnet", "test_resnet", "tf_efficientnet_lite0"])
def test_one_pass_cam_equals_package_gradcam(arch: str) -> None:
    torch.manual_seed(0)
    model = build(arch, 3, init="none").eval()
    assert has_linear_head(model)
    x = torch.rand(2, 1, 96, 80)
    with torch.no_grad():
        features = model.forward_features(x)
        classes = model.forward_head(features).argmax(dim=1)
    ours = one_pass_cam(features, model.get_classifier(), classes, (96, 80))
    theirs = package_cam(model, x, classes.tolist(), "Grad-CAM")
    assert ours.shape == theirs.shape == (2, 96, 80)
    assert np.abs(ours - theirs).max() < 1e-4


@pytest.mark.parametrize("method", sorted(CAM_METHODS))
def test_every_method_gives_a_normalised_map(method: str) -> None:
    model = build("test_efficientnet", 3, init="none").eval()
    cams = package_cam(model, torch.rand(1, 1, 64, 64), [2], method)
    assert cams.shape == (1, 64, 64)
    assert cams.min() >= 0 and cams.max() <= 1 + 1e-6


def test_unknown_method() -> None:
    model = build("test_efficientnet", 3, init="none").eval()
    with pytest.raises(ValueError, match="Unknown heat-map method"):
        package_cam(model, torch.rand(1, 1, 64, 64), [0], "Magic-CAM")


def test_overlay_blends_over_the_grey_image() -> None:
    grey = np.full((40, 30), 0.5, dtype=np.float32)
    heat = np.zeros((40, 30), dtype=np.float32)
    heat[10, 10] = 1.0
    out = overlay(grey, heat, opacity=0.5)
    assert out.shape == (40, 30, 3) and out.dtype == np.uint8
    assert out[10, 10, 0] > out[10, 10, 2] + 50  # hot spot is red
    assert np.all(np.abs(out[0, 0].astype(int) - 128) <= 1)  # cold pixels keep their grey
    plain = overlay(grey, heat, opacity=0.0)
    assert np.all(np.abs(plain.astype(int) - 128) <= 1)  # grey 0.5 unchanged
    with pytest.raises(ValueError):
        overlay(grey, heat, opacity=1.5)


def test_the_tap_of_a_film_model_zeroes_only_what_its_score_does_not_read() -> None:
    """A patch-recipe film model pools the breast's positions, each reading the cells of its patch
    window: the CAM's tap is 0 on the cells no pooled window covers, and the tapped model's output
    (what the CAM methods differentiate) is the model's own."""
    from mammo.explain import FeatureTap
    from mammo.film import FilmModel
    from mammo.train import TrainConfig

    torch.manual_seed(0)
    config = TrainConfig(recipe="patch", arch="test_efficientnet", init="none", image_size=128, patch_size=64)
    model = FilmModel(build("test_efficientnet", 3, init="none"), config.head).eval()
    x = torch.full((1, 1, 128, 128), -5.0)  # black (outside the breast) ...
    x[..., :, :80] = torch.rand(1, 1, 128, 80)  # ... but for a breast on the left
    tapped, seen = FeatureTap(model).eval(), []
    tapped.tap.register_forward_hook(lambda _module, _inputs, output: seen.append(output))
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.positions(x, features)
        assert pooled.any() and not pooled.all()
        assert torch.equal(tapped(x), model.forward_head(features, pooled))
    read = model.read_cells(pooled)[0]  # the cells of the pooled positions' 2 x 2 windows
    assert pooled[0].sum() < read.sum() < read.numel()
    assert (seen[0][0][:, ~read] == 0).all() and torch.equal(seen[0][0][:, read], features[0][:, read])
