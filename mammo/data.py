"""Labelled image folders and case shards as examples; patient-level splits; training tensors.

A data folder is the ``imagefolder`` layout: ``<root>/<label>/<file>`` plus an optional
``<root>/metadata.csv`` (``file_name`` relative to root; other columns kept, e.g. ``patient_id``).
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import pyarrow.compute as pc
import torch
from sklearn.model_selection import StratifiedGroupKFold
from torchvision.transforms import v2

from .fingerprint import FilmIdentity, Fingerprints, LearntFilms, is_fingerprint
from .imaging import MIN_SIDE, read_image, sha256_of_pixels
from .preprocess import Geometry, PreprocessConfig, prepare, small_copy, to_tensor

__all__ = [
    "copy_groups",
    "CaseImage",
    "Example",
    "NO_MODEL",
    "recorded_films",
    "SplitSpec",
    "IMAGE_SUFFIXES",
    "label_order",
    "read_folder",
    "folder_examples",
    "case_examples",
    "split_by_patient",
    "films_key",
    "PreparedImages",
    "augmenter",
    "augmentation_text",
    "IN_MEMORY_BYTES",
    "film_identities",
    "learnt_by",
]

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".tif", ".tiff", ".pgm", ".bmp", ".dcm"})
# Known labels in order of severity; any other label follows, alphabetically.
_SEVERITY = ("normal", "normal_or_benign", "benign", "malignant")
# Prepared training squares are kept in memory up to this size in all; beyond it each is prepared
# again when a batch needs it (a store of many cases never sits decoded in memory).
IN_MEMORY_BYTES = 512 * 2**20
# A case's columns that are its record, not its metadata (the image is read when a batch needs it).
_CASE_RECORD_COLUMNS = frozenset({"image", "label", "case_id", "submitted_at", "image_sha256"})


@dataclass(frozen=True, eq=False, slots=True)
class CaseImage:
    """A case's image left in the case dataset (Arrow, memory-mapped) until it is read."""

    cases: datasets.Dataset  # with an undecoded image column
    row: int

    def encoded(self) -> bytes:
        image = self.cases[self.row]["image"]
        return image["bytes"] if image["bytes"] is not None else Path(image["path"]).read_bytes()


@dataclass(frozen=True, slots=True)  # slots: a store of many cases is many examples
class Example:
    """One labelled image: where its bytes are, its label, its patient (or image) group, and its
    metadata."""

    source: str | bytes | CaseImage
    label: str
    group: str
    name: str
    metadata: dict[str, Any] = field(default_factory=dict, compare=False)

    def read(self, min_side: int = MIN_SIDE) -> np.ndarray:
        """The image as a grey array in [0, 1] (decoded now)."""
        source = self.source.encoded() if isinstance(self.source, CaseImage) else self.source
        return read_image(source, min_side=min_side)


@dataclass(frozen=True)
class SplitSpec:
    """How a base folder is split by patient: fractions for validation and holdout, and the seed."""

    val: float = 0.15
    holdout: float = 0.15
    seed: int = 0

    def to_dict(self) -> dict:
        return {"val": self.val, "holdout": self.holdout, "seed": self.seed, "by": "patient_id"}

    @classmethod
    def from_model_config(cls, config: dict) -> SplitSpec | None:
        """The patient split a model's ``config.json`` records; None when it used no holdout."""
        recorded = (config.get("mammo") or {}).get("split") or {}
        if not recorded.get("holdout"):
            return None
        return cls(val=recorded["val"], holdout=recorded["holdout"], seed=recorded["seed"])


def label_order(labels: Iterable[str]) -> list[str]:
    """Labels in severity order (normal ... malignant), unknown ones after, alphabetically."""
    rank = {name: i for i, name in enumerate(_SEVERITY)}
    return sorted(set(labels), key=lambda name: (rank.get(name, len(rank)), name))


def _metadata(root: Path) -> dict[str, dict]:
    path = root / "metadata.csv"
    if not path.is_file():
        return {}
    with path.open(newline="") as handle:
        return {row["file_name"]: row for row in csv.DictReader(handle)}


def read_folder(root: Path) -> datasets.Dataset:
    """An imagefolder as a ``datasets.Dataset`` (image paths not decoded; labels = folder names)."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data folder not found: {root}")
    files = sorted(
        p for p in root.glob("*/*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ValueError(f"{root} has no images in <label>/<file> folders")
    labels = label_order(p.parent.name for p in files)
    meta = _metadata(root)
    extra = sorted({k for row in meta.values() for k in row} - {"file_name", "label"})
    names = [p.relative_to(root).as_posix() for p in files]
    columns = {
        "image": [str(p) for p in files],
        "label": [p.parent.name for p in files],
        "file_name": names,
        **{key: [meta.get(name, {}).get(key) or None for name in names] for key in extra},
    }
    features = datasets.Features(
        {
            "image": datasets.Image(decode=False),
            "label": datasets.ClassLabel(names=labels),
            "file_name": datasets.Value("string"),
            **{key: datasets.Value("string") for key in extra},
        }
    )
    return datasets.Dataset.from_dict(columns, features=features)


def folder_examples(root: Path) -> list[Example]:
    """Every image of a folder; grouped by ``patient_id`` when metadata has it."""
    dataset = read_folder(root)
    names = dataset.features["label"].names
    out = []
    for row in dataset.to_list():
        name = row["file_name"]
        metadata = {key: value for key, value in row.items()
                    if value is not None and key not in ("image", "label")}
        group = str(row.get("patient_id") or name)
        out.append(Example(row["image"]["path"], names[row["label"]], group, name, metadata))
    return out


def case_examples(cases: datasets.Dataset, batch_size: int = 10_000) -> list[Example]:
    """Submitted cases (one group each: submissions carry no patient identifier), in the order they
    were submitted (the store's rows are not: merging small shards sorts them by id); their images
    stay in the (memory-mapped) dataset until a batch reads them, and each example keeps only the
    metadata fields that were filled in (a store of many cases is many examples)."""
    if len(cases) == 0:
        return []
    names = cases.features["label"].names
    images = cases.cast_column("image", datasets.Image(decode=False))
    fields = [name for name in cases.column_names if name not in _CASE_RECORD_COLUMNS]
    out: list[Example] = []
    for batch in cases.select_columns(["label", "case_id", *fields]).iter(batch_size=batch_size):
        for i, (code, case_id) in enumerate(zip(batch["label"], batch["case_id"], strict=True)):
            metadata = {key: batch[key][i] for key in fields if batch[key][i] is not None}
            out.append(Example(CaseImage(images, len(out)), names[code], case_id, case_id, metadata))
    # ISO 8601 UTC times, in the order of their text; sorted in Arrow (no Python string per case)
    submitted = cases.with_format("arrow")["submitted_at"]
    return [out[row] for row in pc.sort_indices(submitted).to_numpy()]


def split_by_patient(examples: Sequence[Example], spec: SplitSpec) -> dict[str, list[Example]]:
    """Stratified ``train``/``val``/``holdout`` split with no group (patient) on two sides."""
    remaining = list(examples)
    parts: dict[str, list[Example]] = {}
    for name, fraction in (("holdout", spec.holdout), ("val", spec.val)):
        if fraction <= 0:
            parts[name] = []
            continue
        share = fraction / (1 - spec.holdout) if name == "val" else fraction
        n_splits = max(2, round(1 / share))
        labels = [e.label for e in remaining]
        groups = [e.group for e in remaining]
        if len(set(groups)) < n_splits:  # said, not sklearn's "Cannot have number of splits n_splits=7 ..."
            raise ValueError(
                f"{len(set(groups))} patients are too few to split by patient: setting {fraction:.0%} of "
                f"them apart for {'validation' if name == 'val' else 'the held-out check'} needs at least "
                f"{n_splits} (with {len(remaining)} films). Add films of more patients.")
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=spec.seed)
        rest, taken = next(folds.split(np.zeros(len(remaining)), labels, groups))
        parts[name] = [remaining[i] for i in taken]
        remaining = [remaining[i] for i in rest]
    parts["train"] = remaining
    return parts


def films_key(examples: Sequence[Example], min_side: int = MIN_SIDE) -> str:
    """A short digest of a set of labelled films (each film's pixels and label, in any order): two
    evaluations with the same key scored the same films, as the same copies (another resolution of
    a film is other pixels: its scores differ)."""
    films = sorted(f"{sha256_of_pixels(e.read(min_side))}\x1f{e.label}" for e in examples)
    return hashlib.sha256("\x1e".join(films).encode()).hexdigest()[:16]


def augmenter(orient: bool, vertical_flip: bool = True, contrast: bool = True) -> v2.Compose:
    """Training augmentation on [0, 1] squares: flips, rotation +-10 deg, brightness (and contrast).

    Horizontal flips are left out when images are laterality-normalised (they would undo it);
    vertical flips when up has a meaning (ultrasound: the skin at the top, shadows below a mass).
    ``contrast=False`` where the background must stay black: a contrast jitter blends the image with
    its mean grey, lifting the black outside the breast above the level that marks the breast.
    """
    flips = [v2.RandomVerticalFlip()] if vertical_flip else []
    flips += [] if orient else [v2.RandomHorizontalFlip()]
    jitter = v2.ColorJitter(brightness=0.15, contrast=0.15 if contrast else 0)
    return v2.Compose([*flips, v2.RandomRotation(10), jitter])


def augmentation_text(orient: bool, vertical_flip: bool = True, contrast: bool = True) -> str:
    """What :func:`augmenter` does with these settings, in words (for records and cards)."""
    flips = [name for name, on in (("vertical flips", vertical_flip), ("horizontal flips", not orient)) if on]
    jitter = "brightness/contrast" if contrast else "brightness"
    return ", ".join([*flips, "rotation up to 10 degrees", jitter])


class PreparedImages(torch.utils.data.Dataset):
    """Examples prepared for the model (crop, orient, resize); normalised (and augmented) on access.

    Prepared squares are kept in memory when they all fit in :data:`IN_MEMORY_BYTES` (decoded once);
    otherwise each is read and prepared again whenever a batch needs it, so a large case store is
    never held decoded in memory.

    Args:
        examples: the labelled images.
        labels: class names in model order.
        preprocess: crop/orient/size settings of the model.
        mean: normalisation mean (one value, grey).
        std: normalisation std.
        augment: random augmentation for training (:func:`augmenter`); None for none.
        min_side: smallest accepted image side (lowered for small benchmark images).
        keep_in_memory: force (True) or forbid (False) keeping the prepared squares; None decides
            by their size.
    """

    def __init__(
        self,
        examples: Sequence[Example],
        labels: Sequence[str],
        preprocess: PreprocessConfig,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        augment: v2.Transform | None = None,
        min_side: int = MIN_SIDE,
        keep_in_memory: bool | None = None,
    ) -> None:
        unknown = {e.label for e in examples} - set(labels)
        if unknown:
            raise ValueError(f"labels {sorted(unknown)} are not in the model's labels {list(labels)}")
        self.examples, self.preprocess, self.min_side = list(examples), preprocess, min_side
        self.targets = torch.tensor([list(labels).index(e.label) for e in examples])
        if keep_in_memory is None:
            keep_in_memory = len(examples) * 4 * preprocess.image_size**2 <= IN_MEMORY_BYTES
        kept = [self._prepare(i) for i in range(len(examples))] if keep_in_memory else None
        self.squares = None if kept is None else [square for square, _ in kept]
        self.geometries = None if kept is None else [geometry for _, geometry in kept]
        self.mean, self.std = mean, std
        self.augment = augment

    def _prepare(self, index: int) -> tuple[torch.Tensor, Geometry]:
        square, geometry = prepare(self.examples[index].read(self.min_side), self.preprocess)
        return torch.from_numpy(square)[None], geometry

    def square(self, index: int) -> torch.Tensor:
        """The prepared image ``index`` as a (1, S, S) tensor in [0, 1], before normalising."""
        return self.squares[index] if self.squares is not None else self._prepare(index)[0]

    def geometry(self, index: int) -> Geometry:
        """Where the prepared image ``index`` lies in its original (to map coordinates onto it)."""
        return self.geometries[index] if self.geometries is not None else self._prepare(index)[1]

    def stack(self, indices: Sequence[int]) -> torch.Tensor:
        """The prepared images ``indices`` (repeats allowed) as a (B, 1, S, S) tensor, each read once."""
        unique = {index: self.square(index) for index in dict.fromkeys(indices)}
        return torch.stack([unique[index] for index in indices])

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        square = self.square(index)
        if self.augment is not None:
            square = self.augment(square).clamp(0, 1)
        return to_tensor(square[0].numpy(), self.mean, self.std), self.targets[index]


def film_identities(examples: Iterable[Example], min_side: int = MIN_SIDE) -> Iterator[FilmIdentity]:
    """Each example's :class:`FilmIdentity`, in order (each decoded once, as it is asked for)."""
    for example in examples:
        grey = example.read(min_side)
        yield FilmIdentity.of(sha256_of_pixels(grey), small_copy(grey))


def copy_groups(examples: Sequence[Example], min_side: int = MIN_SIDE) -> list[str]:
    """Each example's group (its patient), with the copies of one image (the same pixels, or another
    size, encoding or its mirror image: by fingerprint, as :class:`Fingerprints` matches them) joined
    into the group of the first: a fold holding one copy while another trains scores a film it has
    seen (BreastMNIST, whose images are their own groups, holds copies: its 624 train+val images are 565
    groups, 112 images in 53 groups of two or more; a CLI walk)."""
    joined = {e.group: e.group for e in examples}  # union-find over the groups

    def root(group: str) -> str:
        while joined[group] != group:
            joined[group] = joined[joined[group]]
            group = joined[group]
        return group

    seen = Fingerprints(())
    for i, identity in enumerate(film_identities(examples, min_side)):
        for j in seen.find_all(identity.fingerprint, identity.mirrored):
            first, other = root(examples[j].group), root(examples[i].group)
            if first != other:
                joined[other] = first
        seen.add(identity.fingerprint)
    return [root(e.group) for e in examples]


def learnt_by(init: str | Path, films: Iterable[FilmIdentity]) -> int | None:
    """How many of these images (their identities: :func:`film_identities`) the starting weights
    ``init`` learnt from (trained or validated on), by the pixel hashes its ``config.json`` records and,
    for a copy at another size or encoding, the fingerprints (models made before those were recorded:
    the pixels only): 0 for ``imagenet`` / ``none`` (``films`` then not read); None when ``init`` is a
    folder that records none (e.g. a cross-validation's fold model)."""
    if str(init) in NO_MODEL:
        return 0
    recorded = recorded_films(init)
    if recorded is None:
        return None
    learnt = LearntFilms(recorded)
    return sum(learnt.holds(*film) for film in films)


NO_MODEL = ("imagenet", "none")  # starting weights that are no model's (no films learnt)


def recorded_films(init: str | Path) -> dict[str, list[str]] | None:
    """The films the model at ``init`` records it learnt from (trained or validated on):
    ``image_sha256`` and ``image_fingerprints``, each entry checked (a malformed one left out); None
    for ImageNet or no weights, or a folder that records none."""
    if str(init) in NO_MODEL:
        return None
    try:
        data = json.loads((Path(init) / "config.json").read_text())["mammo"]["data"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("image_sha256"), list):
        return None
    prints = data.get("image_fingerprints")
    prints = prints if isinstance(prints, list) else []
    return {"image_sha256": [h for h in data["image_sha256"] if isinstance(h, str)],
            "image_fingerprints": [f for f in prints if is_fingerprint(f)]}
