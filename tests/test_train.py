"""Training: loss goes down on real images, early stopping keeps the best epoch, class weights, the
settings a recipe refuses, the layers whole-film fine-tuning trains, and what leaves the patch
recipe's weights unchanged (the test-time mirror, validation films)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mammo.data import PreparedImages, SplitSpec, folder_examples, split_by_patient
from mammo.metrics import evaluate_predictions
from mammo.model import build
from mammo.train import TrainConfig, _class_weights, _deep_parameters, fit, infer_probs


def test_class_weights_balance_the_classes() -> None:
    weights = _class_weights(torch.tensor([0, 0, 0, 1]), 3)
    assert weights[2] == 0  # absent class
    assert torch.isclose(weights[0] * 3, weights[1] * 1)


def test_a_few_epochs_lower_the_loss_on_real_images(mias) -> None:
    parts = split_by_patient(folder_examples(mias), SplitSpec(val=0.2, holdout=0.0, seed=1))
    train = [e for e in parts["train"] if e.label != "benign"][:24]
    val = [e for e in parts["val"] if e.label != "benign"][:12]
    config = TrainConfig(arch="test_efficientnet", init="none", image_size=48, epochs=6,
                         batch_size=8, lr=3e-3, patience=10, seed=0)
    logs = []
    result = fit(train, val, ["normal", "malignant"], config, progress=logs.append)
    losses = [log.train_loss for log in logs]
    assert len(losses) == 6
    assert min(losses[3:]) < losses[0]
    best = max(logs, key=lambda log: log.val_auc)
    assert result.best_epoch == best.epoch


def test_early_stopping_restores_the_best_epoch(mias) -> None:
    examples = folder_examples(mias)
    normal = [e for e in examples if e.label == "normal"][:10]
    malignant = [e for e in examples if e.label == "malignant"][:10]
    train, val = normal[:6] + malignant[:6], normal[6:] + malignant[6:]
    config = TrainConfig(arch="test_efficientnet", init="none", image_size=32, epochs=12,
                         batch_size=4, lr=1e-2, patience=2, seed=0)
    labels = ["normal", "malignant"]
    logs = []
    result = fit(train, val, labels, config, progress=logs.append)
    assert len(logs) == min(config.epochs, result.best_epoch + config.patience)
    assert sum(log.best for log in logs) >= 1 and logs[result.best_epoch - 1].best
    images = PreparedImages(val, labels, config.preprocess, (0.5,), (0.5,))
    probs = infer_probs(result.model, images)  # the restored epoch's AUC, recomputed
    auc = evaluate_predictions(images.targets.numpy(), probs, labels, n_resamples=0)["auc_malignant"]
    assert np.isclose(auc, logs[result.best_epoch - 1].val_auc)


def test_without_validation_every_epoch_runs_and_the_last_is_kept(mias) -> None:
    examples = folder_examples(mias)
    train = [e for e in examples if e.label == "normal"][:6]
    train += [e for e in examples if e.label == "malignant"][:6]
    config = TrainConfig(arch="test_efficientnet", init="none", image_size=32, epochs=3,
                         batch_size=4, lr=1e-2, patience=1, seed=0)
    logs = []
    result = fit(train, [], ["normal", "malignant"], config, progress=logs.append)
    assert [log.epoch for log in logs] == [1, 2, 3] and result.best_epoch == 3
    assert all(log.val_auc is None and log.val_loss is None for log in logs)


def test_the_recorded_settings_say_how_whole_films_are_augmented() -> None:
    assert TrainConfig(recipe="patch", film_epochs=2).to_dict()["film_augmentation"] == \
        "vertical flips, rotation up to 10 degrees, brightness"
    assert TrainConfig(recipe="patch", orient=False, vertical_flip=False, film_epochs=1).to_dict()[
        "film_augmentation"] == "horizontal flips, rotation up to 10 degrees, brightness"
    assert TrainConfig(recipe="patch").to_dict()["film_augmentation"] is None
    recorded = TrainConfig(recipe="patch", film_epochs=2).to_dict()
    assert TrainConfig.from_dict(recorded) == TrainConfig(recipe="patch", film_epochs=2)


@pytest.mark.parametrize(("settings", "message"), [
    ({"recipe": "film", "film_epochs": 2}, "follows the patch recipe"),
    ({"recipe": "patch", "film_epochs": -1}, "negative"),
    ({"recipe": "patch", "patch_size": 100}, "multiple of 32"),
    ({"recipe": "patch", "patch_size": 96, "image_size": 64}, "image size must be at least 96 px, got 64"),
    ({"recipe": "whole"}, "unknown recipe"),
])
def test_recipes_refuse_settings_they_cannot_run(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_film_fine_tuning_trains_the_deeper_layers_of_lite0() -> None:
    net = build("tf_efficientnet_lite0", 3, init="none")
    trained = {id(p) for p in _deep_parameters(net)}
    names = {".".join(name.split(".")[: 2 if name.startswith("blocks") else 1])
             for name, p in net.named_parameters() if id(p) in trained}
    assert names == {"blocks.4", "blocks.5", "blocks.6", "conv_head", "bn2", "classifier"}


def test_the_test_time_mirror_leaves_training_unchanged(small_mias) -> None:
    """``test_time_mirror`` changes how the trained model scores, never what it learns: the patch recipe
    with its whole-film stage (which trains in eval mode, to keep the batch-norm statistics) gives the
    same weights with and without it, and only the mirrored model averages at scoring."""
    from dataclasses import replace

    from mammo.train import train_recipe

    films = folder_examples(small_mias)[:24]
    config = TrainConfig(recipe="patch", arch="test_efficientnet", init="none", image_size=128, patch_size=64,
                         epochs=1, batch_size=32, film_epochs=1, film_batch_size=4, seed=0)
    labels = ["normal", "benign", "malignant"]
    plain = train_recipe(films, [], labels, config).model
    mirrored = train_recipe(films, [], labels, replace(config, test_time_mirror="horizontal")).model
    assert plain.head.mirror is None and mirrored.head.mirror == "horizontal"
    before, after = plain.net.state_dict(), mirrored.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    x = torch.rand(2, 1, 128, 128)
    with torch.inference_mode():
        own, flipped = plain.film_scores(x), plain.film_scores(x.flip(-1))
        assert torch.allclose(mirrored.film_scores(x), (own + flipped) / 2, atol=1e-6)


def test_validation_films_change_nothing_the_patch_recipe_learns(small_mias) -> None:
    """The patch recipe only scores validation films (progress): a run with them trains exactly the
    weights of a run without them, through hard-negative epochs and the whole-film stage. (Building the
    model to score them once drew from torch's random state, so a cross-validation fold, which has no
    validation films, trained differently from the recipe's earlier runs.)"""
    from mammo.train import train_recipe

    films = folder_examples(small_mias)
    config = TrainConfig(recipe="patch", arch="test_efficientnet", init="none", image_size=128, patch_size=64,
                         epochs=2, batch_size=32, hard_negatives=1, film_epochs=1, film_batch_size=4, seed=0)
    labels = ["normal", "benign", "malignant"]
    held = {e.group for e in films if e.label == "malignant"}  # three women with a malignant film
    held = set(sorted(held)[:3])
    val = [e for e in films if e.group in held]
    train = [e for e in films if e.group not in held][:30]
    alone = train_recipe(train, [], labels, config)
    scored = train_recipe(train, val, labels, config)
    assert all(log.val_auc is not None for log in scored.history)  # every epoch scored them
    assert [log.stage for log in scored.history] == ["patches", "patches", "whole films"]
    before, after = alone.model.net.state_dict(), scored.model.net.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_an_epoch_without_validation_films_draws_nothing() -> None:
    """A cross-validation fold or final model has no validation films: its epoch log neither builds a
    model nor draws from torch's random state, so its training follows the same random stream as the
    recipe's runs before the whole-film stage existed (v2's)."""
    import time

    from mammo.distributed import accelerator
    from mammo.train import _epoch_log

    built = []
    state = torch.get_rng_state()
    log = _epoch_log(1, TrainConfig(recipe="patch"), [0.5], accelerator(), None, lambda: built.append(1),
                     ["normal", "benign", "malignant"], time.perf_counter())
    assert built == [] and torch.equal(torch.get_rng_state(), state)
    assert log.val_auc is None and log.train_loss == 0.5


def test_the_training_defaults_are_one_table() -> None:
    """TrainConfig, `python -m mammo train`/`cv` and the patch cutter take their defaults from
    choices.TRAINING_DEFAULTS: the command line repeated 18 of them by hand, unchecked (a style review)."""
    from mammo.choices import TRAINING_DEFAULTS
    from mammo.cli import _parser
    from mammo.imaging import MIN_SIDE
    from mammo.patches import PatchConfig

    config = TrainConfig()
    assert {name: getattr(config, name) for name in TRAINING_DEFAULTS} == TRAINING_DEFAULTS
    for command in (["train", "--data", "x", "--out", "y"], ["cv", "--data", "x"]):
        args = _parser().parse_args(command)
        assert {name: getattr(args, name) for name in TRAINING_DEFAULTS} == TRAINING_DEFAULTS
    assert TRAINING_DEFAULTS["min_side"] == MIN_SIDE and PatchConfig().size == TRAINING_DEFAULTS["patch_size"]
