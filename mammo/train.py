"""Fit / fine-tune loop: AdamW, class-weighted loss, early stopping on validation AUC, progress."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from .data import Example, PreparedImages
from .metrics import evaluate_predictions
from .model import build
from .preprocess import PreprocessConfig

__all__ = ["TrainConfig", "EpochLog", "FitResult", "fit", "infer_probs", "evaluate_examples"]


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Args:
        arch: timm architecture name.
        init: ``imagenet``, ``none`` or a model folder to fine-tune from.
        image_size: model input side in pixels.
        crop: crop to the breast region.
        orient: flip so the breast is on the left.
        epochs: maximum number of epochs.
        batch_size: images per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        patience: epochs without a better validation AUC before stopping.
        seed: seed of weights' head init, shuffling and augmentation.
        min_side: smallest accepted image side (lower it for 28 px benchmark images).
    """

    arch: str = "tf_efficientnet_lite0"
    init: str = "imagenet"
    image_size: int = 256
    crop: bool = True
    orient: bool = True
    epochs: int = 30
    batch_size: int = 16
    lr: float = 3e-4
    weight_decay: float = 1e-5
    patience: int = 7
    seed: int = 0
    min_side: int = 32

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig(image_size=self.image_size, crop=self.crop, orient=self.orient)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EpochLog:
    """What one epoch did; ``val_auc`` is the early-stopping score."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float
    val_auc: float | None
    val_accuracy: float
    seconds: float
    best: bool


@dataclass
class FitResult:
    model: nn.Module
    history: list[EpochLog]
    best_epoch: int
    val_probs: np.ndarray


def _class_weights(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (mean 1); absent classes get weight 0."""
    counts = torch.bincount(targets, minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp_min(1)), 0.0)
    return weights / weights[counts > 0].mean()


def infer_probs(model: nn.Module, images: PreparedImages, batch_size: int = 16) -> np.ndarray:
    """Class probabilities (N, C) of a model over prepared images, in order."""
    model.eval()
    loader = DataLoader(images, batch_size=batch_size, shuffle=False)
    with torch.inference_mode():
        return torch.cat([model(x).softmax(dim=1) for x, _ in loader]).numpy()


def _stopping_score(metrics: dict) -> float | None:
    return metrics["auc_malignant"] if metrics["auc_malignant"] is not None else metrics["auc_macro"]


def fit(
    train: Sequence[Example],
    val: Sequence[Example],
    labels: Sequence[str],
    config: TrainConfig,
    progress: Callable[[EpochLog], None] | None = None,
    step: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Train on ``train``, keep the weights of the epoch with the best validation AUC.

    ``progress`` is called after each epoch; ``step(done, total)`` after each batch.
    """
    if not val:
        raise ValueError("a validation set is needed for early stopping")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    model = build(config.arch, len(labels), config.init)
    mean, std = tuple(model.pretrained_cfg["mean"]), tuple(model.pretrained_cfg["std"])
    prep = config.preprocess
    train_images = PreparedImages(train, labels, prep, mean, std, augment=True,
                                  min_side=config.min_side)
    val_images = PreparedImages(val, labels, prep, mean, std, min_side=config.min_side)
    loss_fn = nn.CrossEntropyLoss(weight=_class_weights(train_images.targets, len(labels)))
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    loader = DataLoader(train_images, batch_size=config.batch_size, shuffle=True,
                        generator=generator, drop_last=len(train_images) > config.batch_size)
    history: list[EpochLog] = []
    best_state, best_score, best_epoch, best_probs = None, -np.inf, 0, None
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        model.train()
        losses = []
        for index, (x, y) in enumerate(loader, start=1):
            optimiser.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
            if step:
                step(index, len(loader))
        probs = infer_probs(model, val_images, config.batch_size)
        val_loss = loss_fn(torch.log(torch.from_numpy(probs).clamp_min(1e-8)), val_images.targets)
        metrics = evaluate_predictions(val_images.targets.numpy(), probs, labels, n_resamples=0)
        score = _stopping_score(metrics)
        ranked = score if score is not None else -float(val_loss)
        improved = ranked > best_score
        if improved:
            best_state, best_score, best_epoch = copy.deepcopy(model.state_dict()), ranked, epoch
            best_probs = probs
        log = EpochLog(epoch, config.epochs, float(np.mean(losses)), float(val_loss), score,
                       metrics["accuracy"], time.perf_counter() - started, improved)
        history.append(log)
        if progress:
            progress(log)
        if epoch - best_epoch >= config.patience:
            break
    model.load_state_dict(best_state)
    return FitResult(model.eval(), history, best_epoch, best_probs)


def evaluate_examples(
    model: nn.Module,
    examples: Sequence[Example],
    labels: Sequence[str],
    preprocess: PreprocessConfig,
    threshold: float | None,
    min_side: int = 32,
    n_resamples: int = 1000,
) -> dict:
    """The ``evaluate --json`` metrics of a model on labelled examples (labels it knows)."""
    mean, std = tuple(model.pretrained_cfg["mean"]), tuple(model.pretrained_cfg["std"])
    images = PreparedImages(examples, labels, preprocess, mean, std, min_side=min_side)
    probs = infer_probs(model, images)
    return evaluate_predictions(images.targets.numpy(), probs, labels, threshold=threshold,
                                n_resamples=n_resamples)
