"""Training recipes: a whole-film classifier, or the lesion-aware patch classifier (two stages).

Both use AdamW, a class-weighted loss and a cosine learning-rate schedule, and report progress.
``film``: the network classifies prepared films; with a validation set the epoch with the best
validation AUC is kept (early stopping), without one the fixed number of epochs runs.
``patch``: the network classifies patches (:mod:`mammo.patches`) for a fixed number of epochs and
is then pooled over whole films (:class:`mammo.film.FilmModel`); with ``film_epochs`` its deeper
layers are then fine-tuned on whole films through that pooling (Shen et al. 2019's second stage).
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from .choices import FILM_STAGE, PATCH_STAGE, RECIPES, TRAINING_DEFAULTS
from .data import Example, PreparedImages, augmentation_text, augmenter, film_identities
from .distributed import ShareRecord, accelerator, from_main, record_shares, sync_buffers
from .film import FilmModel, HeadConfig, check_mirror, raw_scores
from .imaging import MIN_SIDE
from .metrics import evaluate_predictions, malignant_index, paired_auc_difference
from .model import build
from .patches import PatchConfig, PatchFilms
from .preprocess import PreprocessConfig
from .subgroups import subgroup_metrics

if TYPE_CHECKING:
    from .predict import Predictor

__all__ = [
    "TrainConfig",
    "EpochLog",
    "PATCH_STAGE",
    "FILM_STAGE",
    "FitResult",
    "fit",
    "fit_patches",
    "train_recipe",
    "infer_probs",
    "film_scores",
    "evaluate_examples",
    "evaluate_probabilities",
    "ensemble_probabilities",
    "ensemble_threshold",
    "films_learnt",
    "model_probabilities",
    "paired_comparison",
]

_FILM_CONTRAST_JITTER = False  # on whole films it would lift the black background into the breast mask
FIXED_BLOCKS = 4  # whole-film fine-tuning leaves the stem and this many blocks as the patch stage left them
MIN_IMAGE_SIZE = 32  # the backbone's stride: a smaller input has no feature map


@dataclass(frozen=True)
class TrainConfig:
    """Training settings.

    Args:
        recipe: ``film`` (whole-film classifier) or ``patch`` (lesion-aware patch classifier
            pooled over the film; needs lesion marks in the metadata).
        arch: timm architecture name.
        init: ``imagenet``, ``none`` or a model folder to fine-tune from.
        image_size: side of the prepared film in pixels (the model input of ``film``; the film
            the patches are cut from, and the whole-film input, of ``patch``).
        crop: crop to the breast region.
        orient: flip so the breast is on the left.
        vertical_flip: random vertical flips in training (``film``; off for ultrasound, where up
            is the skin side and a mass shadows what lies below it).
        epochs: maximum number of epochs.
        batch_size: images per step.
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        patience: epochs without a better validation AUC before stopping (``film`` with a
            validation set; 0 = never stop early).
        seed: seed of weights' head init, shuffling and augmentation.
        min_side: smallest accepted image side (lower it for 28 px benchmark images).
        patch_size: patch side in pixels (``patch``; a multiple of 32).
        top_k: patch positions pooled per class into the film score (``patch``).
        min_coverage: share of a patch window inside the breast for its position to be pooled
            (``patch``).
        hard_negatives: background patches per film mined each epoch from the patch network's own
            highest lesion probabilities away from marked lesions (``patch``; from epoch 2).
        grad_accum: batches per optimiser step (gradient accumulation; the effective batch is
            ``batch_size x grad_accum x processes``).
        film_epochs: epochs of whole-film fine-tuning after the patch epochs (``patch``; 0: none):
            the film's top-k pooled scores are trained on the film labels, updating the network
            from its fifth block on (the high-resolution stem and first blocks, and every batch-norm
            statistic, stay as the patch stage left them).
        film_lr: AdamW learning rate of the whole-film fine-tuning.
        film_batch_size: films per step of the whole-film fine-tuning.
        test_time_mirror: score each film as the mean of its own and its mirror image's scores
            (``"horizontal"`` or ``"vertical"``; None: as it is) wherever the trained model scores
            (calibration, cross-validation, evaluation, the app); training, its epoch choice
            included, sees each film as it is.
    """

    recipe: str = TRAINING_DEFAULTS["recipe"]
    arch: str = TRAINING_DEFAULTS["arch"]
    init: str = TRAINING_DEFAULTS["init"]
    image_size: int = TRAINING_DEFAULTS["image_size"]
    crop: bool = True
    orient: bool = True
    vertical_flip: bool = True
    epochs: int = TRAINING_DEFAULTS["epochs"]
    batch_size: int = TRAINING_DEFAULTS["batch_size"]
    lr: float = TRAINING_DEFAULTS["lr"]
    weight_decay: float = TRAINING_DEFAULTS["weight_decay"]
    patience: int = TRAINING_DEFAULTS["patience"]
    seed: int = TRAINING_DEFAULTS["seed"]
    min_side: int = TRAINING_DEFAULTS["min_side"]
    patch_size: int = TRAINING_DEFAULTS["patch_size"]
    top_k: int = TRAINING_DEFAULTS["top_k"]
    min_coverage: float = TRAINING_DEFAULTS["min_coverage"]
    hard_negatives: int = TRAINING_DEFAULTS["hard_negatives"]
    grad_accum: int = TRAINING_DEFAULTS["grad_accum"]
    film_epochs: int = TRAINING_DEFAULTS["film_epochs"]
    film_lr: float = TRAINING_DEFAULTS["film_lr"]
    film_batch_size: int = TRAINING_DEFAULTS["film_batch_size"]
    test_time_mirror: str | None = None

    def __post_init__(self) -> None:
        check_mirror(self.test_time_mirror)
        if self.recipe not in RECIPES:
            raise ValueError(f"unknown recipe {self.recipe!r}; choose one of {list(RECIPES)}")
        if self.grad_accum < 1:
            raise ValueError(f"gradient accumulation takes at least 1 batch per step, got {self.grad_accum}")
        if self.recipe == "patch" and self.patch_size % 32:
            raise ValueError(f"patch size must be a multiple of 32, got {self.patch_size}")
        if self.recipe == "patch" and self.patch_size > self.image_size:
            raise ValueError(f"the lesion-aware recipe cuts {self.patch_size} px patches from each film, so "
                             f"its image size must be at least {self.patch_size} px, got {self.image_size}")
        if self.epochs < 0 or self.film_epochs < 0:
            raise ValueError("epochs cannot be negative")
        if self.image_size < MIN_IMAGE_SIZE:  # a traceback from the resize (a CLI walk)
            raise ValueError(f"image size must be at least {MIN_IMAGE_SIZE} px (the backbone's stride), got "
                             f"{self.image_size}")
        if self.min_side < 1:
            raise ValueError(f"the smallest image side accepted (min side) must be at least 1 px, got "
                             f"{self.min_side}")
        if self.film_epochs and self.recipe != "patch":
            raise ValueError("whole-film fine-tuning (film epochs) follows the patch recipe's patch stage; "
                             "the film recipe trains on whole films already")

    @property
    def total_epochs(self) -> int:
        """Every epoch the recipe runs: the patch (or film) epochs, then the whole-film fine-tuning."""
        return self.epochs + self.film_epochs

    def stage(self, epoch: int) -> str | None:
        """What epoch ``epoch`` (1-based) trains on: the patch recipe's :data:`PATCH_STAGE` epochs, then
        its :data:`FILM_STAGE` ones; None for the film recipe's one stage."""
        if self.recipe != "patch":
            return None
        return PATCH_STAGE if epoch <= self.epochs else FILM_STAGE

    @property
    def preprocess(self) -> PreprocessConfig:
        return PreprocessConfig(image_size=self.image_size, crop=self.crop, orient=self.orient)

    @property
    def head(self) -> HeadConfig:
        """The film head this recipe's model gets (uncalibrated)."""
        return HeadConfig(kind=self.recipe, patch_cells=self.patch_size // 32, top_k=self.top_k,
                          min_coverage=self.min_coverage if self.recipe == "patch" else 0.0,
                          mirror=self.test_time_mirror)

    def to_dict(self) -> dict:
        """The settings, and in words the augmentation of the whole-film fine-tuning (None without it)."""
        film = (augmentation_text(self.orient, self.vertical_flip, contrast=_FILM_CONTRAST_JITTER)
                if self.film_epochs else None)
        return {**asdict(self), "film_augmentation": film}

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """The settings recorded in a model's ``mammo.training`` (unknown keys ignored)."""
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class EpochLog:
    """What one epoch did; ``val_auc`` is the early-stopping score. ``stage``: the patch recipe's
    "patches" or "whole films" (their losses differ in kind); None for the film recipe's one stage."""

    epoch: int
    epochs: int
    train_loss: float
    val_loss: float | None
    val_auc: float | None
    val_accuracy: float | None
    seconds: float
    best: bool
    stage: str | None = None


@dataclass
class FitResult:
    """The trained model (film logits, on the CPU), its epochs, which epoch's weights it holds, and
    how the training data was shared between processes."""

    model: FilmModel
    history: list[EpochLog]
    best_epoch: int
    shares: ShareRecord


class _Indexed(torch.utils.data.Dataset):
    """A dataset's items with their index (which items each training process saw)."""

    def __init__(self, data: torch.utils.data.Dataset) -> None:
        self.data = data

    def __len__(self) -> int:
        return len(self.data)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple:
        return (*self.data[index], index)


def _class_weights(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (mean 1); absent classes get weight 0."""
    counts = torch.bincount(targets, minlength=num_classes).float()
    weights = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp_min(1)), 0.0)
    return weights / weights[counts > 0].mean()


def infer_probs(model: nn.Module, images: PreparedImages, batch_size: int = 16) -> np.ndarray:
    """Class probabilities (N, C) of a model over prepared images, in order."""
    model.eval()
    device = next(model.parameters()).device
    loader = DataLoader(images, batch_size=batch_size, shuffle=False)
    with torch.inference_mode():
        return torch.cat([model(x.to(device)).softmax(dim=1).cpu() for x, _ in loader]).numpy()


def _stopping_score(metrics: dict) -> float | None:
    return metrics["auc_malignant"] if metrics["auc_malignant"] is not None else metrics["auc_macro"]


def _val_scores(model: nn.Module, images: PreparedImages, labels: Sequence[str],
                batch_size: int) -> tuple[np.ndarray, float | None, float]:
    """Validation probabilities, the early-stopping score (AUC) and accuracy of ``model``."""
    probs = infer_probs(model, images, batch_size)
    metrics = evaluate_predictions(images.targets.numpy(), probs, labels, n_resamples=0)
    return probs, _stopping_score(metrics), metrics["accuracy"]


def _optimiser(params: Sequence[nn.Parameter], lr: float, weight_decay: float, epochs: int,
               batches_per_process: int, processes: int, grad_accum: int):
    """AdamW with a cosine schedule over the whole run: each process takes ``batches_per_process``
    batches an epoch, and accelerate steps a prepared schedule once per process at each optimiser
    step (every ``grad_accum`` batches)."""
    optimiser = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    steps = epochs * processes * int(np.ceil(batches_per_process / grad_accum))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=max(1, steps))
    return optimiser, schedule


def _validate(model: nn.Module, images: PreparedImages, labels: Sequence[str], batch_size: int,
              loss_fn: nn.Module, device: torch.device) -> tuple[float | None, float, float]:
    """The early-stopping score (AUC), loss and accuracy of ``model`` on validation images."""
    probs, score, accuracy = _val_scores(model, images, labels, batch_size)
    log_probs = torch.log(torch.from_numpy(probs).clamp_min(1e-8)).to(device)
    return score, float(loss_fn(log_probs, images.targets.to(device))), accuracy


def _step(acc, model, optimiser, schedule, loss_fn, x: torch.Tensor, y: torch.Tensor) -> float:
    """One batch: forward, backward, and an optimiser step when ``grad_accum`` batches are in."""
    with acc.accumulate(model):
        loss = loss_fn(model(x), y)
        acc.backward(loss)
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
    return loss.item()


def _mean_loss(acc, losses: list[float]) -> float:
    """The epoch's training loss averaged over every process."""
    mean = torch.tensor(float(np.mean(losses)), device=acc.device)
    return float(acc.reduce(mean, reduction="mean")) if acc.num_processes > 1 else float(mean)


def _film_loader(images: PreparedImages, batch_size: int, generator: torch.Generator, acc) -> DataLoader:
    """This process's share of shuffled batches of films (with each item's index)."""
    drop_last = _drop_last(len(images), batch_size, acc.num_processes)
    return acc.prepare(DataLoader(_Indexed(images), batch_size=batch_size, shuffle=True, generator=generator,
                                  drop_last=drop_last))


def _film_epoch(acc, trained, loader: DataLoader, optimiser, schedule, loss_fn,
                step: Callable[[int, int], None] | None) -> tuple[list[float], list[int]]:
    """One epoch over a film loader: the batch losses and the films this process trained on."""
    losses: list[float] = []
    seen: list[int] = []
    for index, (x, y, items) in enumerate(loader, start=1):
        losses.append(_step(acc, trained, optimiser, schedule, loss_fn, x, y))
        seen += items.tolist()
        if step:
            step(index, len(loader))
    return losses, seen


def fit(
    train: Sequence[Example],
    val: Sequence[Example],
    labels: Sequence[str],
    config: TrainConfig,
    progress: Callable[[EpochLog], None] | None = None,
    step: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Train a whole-film classifier on ``train``.

    With ``val`` (and ``patience`` > 0) the weights of the epoch with the best validation AUC are
    kept; with no ``val`` all ``epochs`` run and the last weights are kept. ``progress`` is called
    after each epoch; ``step(done, total)`` after each batch.
    """
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    acc = accelerator(config.grad_accum)
    model = build(config.arch, len(labels), config.init)
    mean, std = tuple(model.pretrained_cfg["mean"]), tuple(model.pretrained_cfg["std"])
    prep = config.preprocess
    train_images = PreparedImages(train, labels, prep, mean, std,
                                  augment=augmenter(prep.orient, config.vertical_flip),
                                  min_side=config.min_side)
    val_images = PreparedImages(val, labels, prep, mean, std, min_side=config.min_side) if val else None
    weights = _class_weights(train_images.targets, len(labels)).to(acc.device)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    loader = _film_loader(train_images, config.batch_size, generator, acc)
    optimiser, schedule = _optimiser(model.parameters(), config.lr, config.weight_decay, config.epochs,
                                     len(loader), acc.num_processes, config.grad_accum)
    trained, optimiser, schedule = acc.prepare(model, optimiser, schedule)
    history: list[EpochLog] = []
    best_state, best_score, best_epoch = None, -np.inf, 0
    seen: list[int] = []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        trained.train()
        losses, items = _film_epoch(acc, trained, loader, optimiser, schedule, loss_fn, step)
        seen += items if epoch == 1 else []
        sync_buffers(acc, model)
        val_loss = score = accuracy = None
        improved = val_images is None
        if val_images is not None:  # scored by the main process: every process takes its decisions
            measured = (_validate(model, val_images, labels, config.batch_size, loss_fn, acc.device)
                        if acc.is_main_process else None)
            score, val_loss, accuracy = from_main(acc, measured)
            ranked = score if score is not None else -val_loss
            improved = ranked > best_score
            if improved:
                best_state, best_score = copy.deepcopy(model.state_dict()), ranked
        if improved:
            best_epoch = epoch
        log = EpochLog(epoch, config.epochs, _mean_loss(acc, losses), val_loss, score, accuracy,
                       time.perf_counter() - started, improved)
        history.append(log)
        if progress:
            progress(log)
        if val_images is not None and config.patience and epoch - best_epoch >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    shares = record_shares(acc, seen)
    return FitResult(FilmModel(model.cpu(), config.head).eval(), history, best_epoch, shares)


def fit_patches(
    train: Sequence[Example],
    val: Sequence[Example],
    labels: Sequence[str],
    config: TrainConfig,
    progress: Callable[[EpochLog], None] | None = None,
    step: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Train the patch classifier for ``epochs`` on patches of ``train`` films (new patches every
    epoch), pool it over films, and fine-tune it on the whole films for ``film_epochs``. ``val``
    films, when given, are only scored each epoch (the uncalibrated film AUC, for progress): they
    select nothing."""
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    acc = accelerator(config.grad_accum)
    net = build(config.arch, len(labels), config.init)
    mean, std = float(net.pretrained_cfg["mean"][0]), float(net.pretrained_cfg["std"][0])
    films = PatchFilms(train, labels, config.preprocess, PatchConfig(size=config.patch_size),
                       config.min_side)
    first = films.sample(rng)
    if not (first[:, 5] != labels.index("normal")).any():
        raise ValueError("the patch recipe needs films with marked lesions (lesion_x, lesion_y, "
                         "lesion_radius in metadata.csv); use the film recipe for data without them")
    weights = _class_weights(torch.as_tensor(first[:, 5]).long(), len(labels)).to(acc.device)
    loss_fn = nn.CrossEntropyLoss(weight=weights)
    rounds = len(_process_batches(len(first), config.batch_size, acc.num_processes, config.grad_accum)[0])
    optimiser, schedule = _optimiser(net.parameters(), config.lr, config.weight_decay, config.epochs, rounds,
                                     acc.num_processes, config.grad_accum)
    trained, optimiser, schedule = acc.prepare(net, optimiser, schedule)
    jitter = v2.ColorJitter(brightness=0.15, contrast=0.15)
    val_images = (PreparedImages(val, labels, config.preprocess, (mean,), (std,), min_side=config.min_side)
                  if val else None)
    history: list[EpochLog] = []
    plan = first
    seen: list[int] = []
    for epoch in range(1, config.epochs + 1):
        started = time.perf_counter()
        if epoch > 1:
            mined = (_hard_negatives(FilmModel(net, config.head).to(acc.device), films, config.hard_negatives,
                                     (mean, std)) if acc.is_main_process else None)
            plan = films.sample(rng, from_main(acc, mined))  # the same plan on every process
        trained.train()
        order = rng.permutation(len(plan))  # the same on every process: each takes its own batches
        dealt = _process_batches(len(order), config.batch_size, acc.num_processes, config.grad_accum)
        mine = Counter(dealt[acc.process_index])
        losses = []
        for start in range(0, len(order), config.batch_size):
            items = order[start : start + config.batch_size]
            flip = rng.random(len(items)) < 0.5  # drawn for every batch: rng stays the same everywhere
            rows = plan[items]
            for _ in range(mine[start]):  # 0 for another process's batch; more when batches repeat
                x = (jitter(films.cut(rows, flip=flip)).clamp(0, 1) - mean) / std
                y = torch.as_tensor(rows[:, 5]).long().to(acc.device)
                losses.append(_step(acc, trained, optimiser, schedule, loss_fn, x.to(acc.device), y))
                seen += items.tolist() if epoch == 1 else []
                if step:
                    step(len(losses), mine.total())
        sync_buffers(acc, net)
        history.append(_epoch_log(epoch, config, losses, acc, val_images, lambda: FilmModel(net, config.head),
                                  labels, started))
        if progress:
            progress(history[-1])
    model = FilmModel(net, replace(config.head, mirror=None))  # trained on each film as it is
    if config.film_epochs:
        # the patch stage's wrapped network, optimiser and schedule: released, here and in accelerate
        trained, optimiser, schedule = acc.free_memory(trained, optimiser, schedule)
        generator = torch.Generator().manual_seed(config.seed)
        film_history, film_seen = _fine_tune_on_films(model, train, labels, config, acc, generator,
                                                      val_images, progress, step)
        history += film_history
        seen = seen or film_seen  # the first epoch's share of patches, or of films when no patch epoch ran
    shares = record_shares(acc, seen)
    return FitResult(FilmModel(net.cpu(), config.head).eval(), history, config.total_epochs, shares)


def _epoch_log(epoch: int, config: TrainConfig, losses: list[float], acc, val_images: PreparedImages | None,
               model: Callable[[], FilmModel], labels: Sequence[str], started: float) -> EpochLog:
    """A patch-recipe epoch's log; its uncalibrated film AUC on ``val_images`` when given (progress only).

    The model is built and the films scored with torch's CPU random state restored afterwards (building a
    ``FilmModel`` draws its calibration layer's initial weights, iterating a DataLoader its base seed):
    progress never changes the training, and a run with validation films trains exactly as one without."""
    score = accuracy = None
    if val_images is not None:
        with torch.random.fork_rng(devices=[]):
            _, score, accuracy = _val_scores(model().to(acc.device), val_images, labels, config.batch_size)
    return EpochLog(epoch, config.total_epochs, _mean_loss(acc, losses), None, score, accuracy,
                    time.perf_counter() - started, True, config.stage(epoch))


def _deep_parameters(net: nn.Module) -> list[nn.Parameter]:
    """What whole-film fine-tuning trains: a timm EfficientNet/MobileNet's blocks from the fifth on
    and everything after them; the stem and first four blocks (high resolution, most of the compute
    of a backward pass at film size) stay fixed. A network without ``blocks``: every parameter."""
    children = list(net.named_children())
    names = [name for name, _ in children]
    if "blocks" not in names:
        return list(net.parameters())
    fixed = {id(p) for _, child in children[: names.index("blocks")] for p in child.parameters()}
    fixed |= {id(p) for p in net.blocks[:FIXED_BLOCKS].parameters()}
    return [p for p in net.parameters() if id(p) not in fixed]


def _fine_tune_on_films(model: FilmModel, train: Sequence[Example], labels: Sequence[str],
                        config: TrainConfig, acc, generator: torch.Generator,
                        val_images: PreparedImages | None, progress: Callable[[EpochLog], None] | None,
                        step: Callable[[int, int], None] | None) -> tuple[list[EpochLog], list[int]]:
    """The patch recipe's second stage: ``film_epochs`` of the uncalibrated film head's class-weighted
    loss on whole films (augmented; no contrast jitter, which would lift the black background into
    the breast mask that the pooling reads from the film), through the top-k pooling of the breast's
    patch positions.
    Returns its epochs' logs and the films this process trained on in the first."""
    mean, std = tuple(model.pretrained_cfg["mean"]), tuple(model.pretrained_cfg["std"])
    images = PreparedImages(train, labels, config.preprocess, mean, std, min_side=config.min_side,
                            augment=augmenter(config.orient, config.vertical_flip,
                                              contrast=_FILM_CONTRAST_JITTER))
    loss_fn = nn.CrossEntropyLoss(weight=_class_weights(images.targets, len(labels)).to(acc.device))
    params = _deep_parameters(model.net)
    trained_ids = {id(p) for p in params}
    for param in model.parameters():  # the calibration layer too: it is fitted afterwards, out of fold
        param.requires_grad_(id(param) in trained_ids)
    loader = _film_loader(images, config.film_batch_size, generator, acc)
    optimiser, schedule = _optimiser(params, config.film_lr, config.weight_decay, config.film_epochs,
                                     len(loader), acc.num_processes, config.grad_accum)
    trained, optimiser, schedule = acc.prepare(model, optimiser, schedule)
    history: list[EpochLog] = []
    seen: list[int] = []
    for epoch in range(config.epochs + 1, config.total_epochs + 1):
        started = time.perf_counter()
        trained.eval()  # batch-norm statistics stay the patch stage's: a few films per batch would not do
        losses, items = _film_epoch(acc, trained, loader, optimiser, schedule, loss_fn, step)
        seen += items if epoch == config.epochs + 1 else []
        history.append(_epoch_log(epoch, config, losses, acc, val_images, lambda: model, labels, started))
        if progress:
            progress(history[-1])
    for param in model.parameters():
        param.requires_grad_(True)
    return history, seen


def _drop_last(items: int, batch_size: int, processes: int) -> bool:
    """Whether the film recipe drops an epoch's incomplete batch: only when every process still gets
    a full batch (accelerate deals whole rounds; with fewer full batches than processes it would
    deal none, and without dropping it fills the last round from the epoch's start)."""
    return items >= batch_size * processes


def _process_batches(items: int, batch_size: int, processes: int, grad_accum: int = 1) -> list[list[int]]:
    """The batch starts each process trains on: batches dealt in turn, the last incomplete round
    dropped so that every process takes the same number of steps (DDP needs that), a whole number
    of accumulation groups (so each epoch ends with an optimiser step and nothing carries over)."""
    starts = list(range(0, items, batch_size))
    group = processes * grad_accum
    kept = max(1, len(starts) // group) * group
    starts = (starts * group)[:kept]  # fewer batches than one group: repeated
    return [starts[rank::processes] for rank in range(processes)]


def _hard_negatives(model: FilmModel, films: PatchFilms, per_film: int,
                    norm: tuple[float, float]) -> list[tuple[int, float, float]]:
    """Centres (film, x, y) of the ``per_film`` pooled positions the patch network finds most
    lesion-like on each film where background may be sampled, away from marked lesions."""
    if per_film <= 0:
        return []
    model.eval()
    found: list[tuple[int, float, float]] = []
    candidates = [i for i in range(len(films.targets)) if films.may_hold_background(i)]
    with torch.inference_mode():
        for start in range(0, len(candidates), 8):
            index = candidates[start : start + 8]
            x = ((films.squares(index) - norm[0]) / norm[1]).to(next(model.parameters()).device)
            features = model.forward_features(x)
            lesion = model.lesion_map(features, model.positions(x, features))
            cell = films.size / lesion.shape[-1]
            for film, heat in zip(index, lesion, strict=True):
                kept = 0
                for flat in heat.flatten().argsort(descending=True).tolist():
                    cy, cx = divmod(flat, heat.shape[-1])
                    x_c, y_c = (cx + 0.5) * cell, (cy + 0.5) * cell
                    if heat[cy, cx] > 0 and films.away_from_marks(film, x_c, y_c):
                        found.append((film, x_c, y_c))
                        kept += 1
                    if kept == per_film:
                        break
    return found


def train_recipe(
    train: Sequence[Example],
    val: Sequence[Example],
    labels: Sequence[str],
    config: TrainConfig,
    progress: Callable[[EpochLog], None] | None = None,
    step: Callable[[int, int], None] | None = None,
) -> FitResult:
    """Train ``config.recipe`` (uncalibrated film head)."""
    trainer = fit_patches if config.recipe == "patch" else fit
    return trainer(train, val, labels, config, progress=progress, step=step)


def film_scores(model: FilmModel, examples: Sequence[Example], labels: Sequence[str],
                preprocess: PreprocessConfig, min_side: int = MIN_SIDE, batch_size: int = 8) -> np.ndarray:
    """Uncalibrated film scores (N, S) of ``model`` over labelled examples."""
    mean, std = tuple(model.pretrained_cfg["mean"]), tuple(model.pretrained_cfg["std"])
    images = PreparedImages(examples, labels, preprocess, mean, std, min_side=min_side)
    loader = DataLoader(images, batch_size=batch_size, shuffle=False)
    return raw_scores(model, (x for x, _ in loader))


def evaluate_examples(
    model: nn.Module,
    examples: Sequence[Example],
    labels: Sequence[str],
    preprocess: PreprocessConfig,
    threshold: float | None,
    min_side: int = MIN_SIDE,
    n_resamples: int = 1000,
) -> dict:
    """The ``evaluate --json`` metrics of a model on labelled examples (labels it knows)."""
    probs = model_probabilities(model, examples, labels, preprocess, min_side)
    return evaluate_probabilities(examples, probs, labels, threshold, n_resamples)


def model_probabilities(model: nn.Module, examples: Sequence[Example], labels: Sequence[str],
                        preprocess: PreprocessConfig, min_side: int = MIN_SIDE) -> np.ndarray:
    """Class probabilities (N, C) of a model over labelled examples, in order."""
    mean, std = tuple(model.pretrained_cfg["mean"]), tuple(model.pretrained_cfg["std"])
    return infer_probs(model, PreparedImages(examples, labels, preprocess, mean, std, min_side=min_side))


def ensemble_probabilities(members: Sequence[Predictor], examples: Sequence[Example]) -> np.ndarray:
    """Class probabilities (N, C) over labelled examples, averaged over models with the same labels
    (each read with its own preprocessing)."""
    return np.mean([model_probabilities(member.model, examples, member.labels, member.preprocess,
                                        member.min_side) for member in members], axis=0)


def ensemble_threshold(thresholds: Sequence[float | None]) -> float | None:
    """An ensemble's operating threshold: the mean of its members' (None when one records none)."""
    return None if not thresholds or None in thresholds else float(np.mean(thresholds))


def films_learnt(members: Sequence[Predictor], examples: Sequence[Example]) -> int | None:
    """How many of the examples some member learnt from (its recorded pixel hashes and fingerprints);
    None when no member records its films."""
    recorders = [member.learnt for member in members if member.learnt is not None]
    if not recorders:
        return None
    identities = film_identities(examples, members[0].min_side)
    return sum(any(learnt.holds(*identity) for learnt in recorders) for identity in identities)


def evaluate_probabilities(examples: Sequence[Example], probs: np.ndarray, labels: Sequence[str],
                           threshold: float | None, n_resamples: int = 1000) -> dict:
    """The ``evaluate --json`` metrics of probabilities (N, C) given to labelled examples."""
    targets = np.array([list(labels).index(e.label) for e in examples])
    metrics = evaluate_predictions(targets, probs, labels, threshold=threshold, n_resamples=n_resamples,
                                   groups=[e.group for e in examples])
    return {**metrics, "subgroups": subgroup_metrics(examples, targets, probs, labels, metrics["threshold"],
                                                     n_resamples)}


def paired_comparison(examples: Sequence[Example], probs_a: np.ndarray, probs_b: np.ndarray,
                      labels: Sequence[str], n_resamples: int = 2000) -> dict | None:
    """Malignant-vs-rest AUC of model b minus model a on the same examples, with its 95% CI from
    resampling whole patients (:func:`mammo.metrics.paired_auc_difference`); None without a
    malignant class or when too few resamples hold both classes."""
    column = malignant_index(labels)
    if column is None:
        return None
    positive = np.array([e.label == labels[column] for e in examples])
    groups = [e.group for e in examples]
    return paired_auc_difference(positive, probs_a[:, column], probs_b[:, column], groups, n_resamples)
