"""Data folders, patient-level splits, prepared training tensors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch
from PIL import Image
from synthetic import synthetic_mammogram

from mammo.data import (
    IN_MEMORY_BYTES,
    CaseImage,
    PreparedImages,
    SplitSpec,
    augmenter,
    case_examples,
    folder_examples,
    label_order,
    read_folder,
    split_by_patient,
)
from mammo.preprocess import PreprocessConfig


def _folder(root: Path, counts: dict[str, int], metadata: bool) -> Path:
    rows = ["file_name,label,patient_id,view"]
    for label, n in counts.items():
        (root / label).mkdir(parents=True)
        for i in range(n):
            name = f"{label}/{label}_{i}.png"
            Image.fromarray((synthetic_mammogram(64, 48) * 255).astype("uint8")).save(root / name)
            rows.append(f"{name},{label},{label}{i // 2},CC")
    if metadata:
        (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return root


def test_label_order_is_by_severity() -> None:
    assert label_order(["malignant", "normal", "benign"]) == ["normal", "benign", "malignant"]
    assert label_order(["malignant", "normal_or_benign"]) == ["normal_or_benign", "malignant"]
    assert label_order(["zeta", "malignant", "alpha"]) == ["malignant", "alpha", "zeta"]


def test_read_folder_keeps_metadata_and_labels(tmp_path) -> None:
    root = _folder(tmp_path, {"normal": 4, "malignant": 2}, metadata=True)
    (root / "normal" / "notes.txt").write_text("not an image")
    dataset = read_folder(root)
    assert len(dataset) == 6
    assert dataset.features["label"].names == ["normal", "malignant"]
    assert set(dataset.column_names) >= {"image", "label", "file_name", "patient_id", "view"}
    examples = folder_examples(root)
    assert {e.group for e in examples if e.label == "malignant"} == {"malignant0"}
    assert examples[0].metadata["view"] == "CC"


def test_without_metadata_each_image_is_its_own_group(tmp_path) -> None:
    examples = folder_examples(_folder(tmp_path, {"a": 3}, metadata=False))
    assert len({e.group for e in examples}) == 3


def test_read_folder_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        read_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no images"):
        read_folder(tmp_path)


def test_real_split_has_no_patient_on_two_sides(mias) -> None:
    examples = folder_examples(mias)
    parts = split_by_patient(examples, SplitSpec(val=0.15, holdout=0.15, seed=0))
    groups = {name: {e.group for e in part} for name, part in parts.items()}
    assert not groups["train"] & groups["val"]
    assert not groups["train"] & groups["holdout"]
    assert not groups["val"] & groups["holdout"]
    assert sum(len(p) for p in parts.values()) == len(examples)
    for name in ("val", "holdout"):
        counts = Counter(e.label for e in parts[name])
        assert set(counts) == {"normal", "benign", "malignant"}  # stratified: every class present
        assert 0.1 < len(parts[name]) / len(examples) < 0.2
    again = split_by_patient(examples, SplitSpec(val=0.15, holdout=0.15, seed=0))
    assert [e.name for e in again["holdout"]] == [e.name for e in parts["holdout"]]


def test_prepared_images_and_augmentation(tmp_path) -> None:
    examples = folder_examples(_folder(tmp_path, {"normal": 2, "malignant": 2}, metadata=True))
    labels = ["normal", "benign", "malignant"]
    images = PreparedImages(examples, labels, PreprocessConfig(32), (0.5,), (0.5,),
                            augment=augmenter(orient=True))
    x, y = images[0]
    assert x.shape == (1, 32, 32) and x.min() >= -1 and x.max() <= 1
    assert sorted(images.targets.tolist()) == [0, 0, 2, 2]
    torch.manual_seed(0)
    square = torch.rand(1, 32, 32)
    assert augmenter(orient=True)(square).shape == (1, 32, 32)
    flips = {name: [kind for kind in (type(t).__name__ for t in augmenter(orient, vertical).transforms)
                    if "Flip" in kind]
             for name, orient, vertical in [("mammogram", True, True), ("ultrasound", False, False)]}
    assert flips == {"mammogram": ["RandomVerticalFlip"], "ultrasound": ["RandomHorizontalFlip"]}
    with pytest.raises(ValueError, match="not in the model's labels"):
        PreparedImages(examples, ["normal"], PreprocessConfig(32), (0.5,), (0.5,))


def test_augmentation_without_contrast_keeps_the_background_black() -> None:
    """The film stage's augmentation (no contrast jitter) leaves the black outside the breast black,
    so the breast mask the pooling reads from the film is the breast's; a contrast jitter lifts it."""
    square = torch.zeros(1, 64, 64)
    square[:, :, :32] = 0.8  # the breast on the left, black background on the right
    background = (slice(None), slice(20, 44), slice(52, None))  # beyond any 10 degree rotation's reach
    torch.manual_seed(0)
    film_stage = augmenter(orient=True, contrast=False)
    assert all(float(film_stage(square)[background].max()) == 0 for _ in range(40))
    torch.manual_seed(0)
    assert max(float(augmenter(orient=True)(square)[background].max()) for _ in range(40)) > 0.02


def test_too_few_patients_to_split_is_said_in_words(mias) -> None:
    examples = folder_examples(mias)[:6]  # 6 patients' films
    with pytest.raises(ValueError, match=r"^6 patients are too few to split by patient: setting 15% of them "
                                         r"apart for the held-out check needs at least 7 \(with 6 films\)"):
        split_by_patient(examples, SplitSpec(val=0.15, holdout=0.15, seed=0))
    parts = split_by_patient(examples, SplitSpec(val=0.5, holdout=0, seed=0))
    assert len({e.group for e in parts["val"]}) == 3


def test_split_spec_from_a_model_config() -> None:
    recorded = {"mammo": {"split": {**SplitSpec(0.2, 0.1, 7).to_dict(), "name": "holdout"}}}
    assert SplitSpec.from_model_config(recorded) == SplitSpec(0.2, 0.1, 7)
    assert SplitSpec.from_model_config({"mammo": {"split": {"name": "validation"}}}) is None
    assert SplitSpec.from_model_config({}) is None


def test_case_images_stay_in_the_store_until_read_and_prepare_alike(tmp_path) -> None:
    from mammo.store import CaseStore

    labels = ["normal", "benign", "malignant"]
    greys = [synthetic_mammogram(64 + 8 * i, 48) for i in range(6)]  # distinct sizes: no duplicates
    with CaseStore(labels, tmp_path / "cases") as store:
        filled = {1: {"density": "C", "age": 61}, 4: {"view": "CC"}}
        receipt = store.append_many([(grey, labels[i % 3], filled.get(i)) for i, grey in enumerate(greys)])
        examples = case_examples(store.load(), batch_size=4)  # read in two batches
    assert all(isinstance(e.source, CaseImage) for e in examples)  # no image bytes held per example
    assert [e.name for e in examples] == [e.group for e in examples] == receipt["case_ids"]
    assert [e.label for e in examples] == [labels[i % 3] for i in range(6)]
    assert [dict(e.metadata) for e in examples] == [filled.get(i, {}) for i in range(6)]  # what was filled in
    assert sorted(e.read().shape for e in examples) == sorted(g.shape for g in greys)
    config = PreprocessConfig(32)
    kept = PreparedImages(examples, labels, config, (0.5,), (0.5,), keep_in_memory=True)
    streamed = PreparedImages(examples, labels, config, (0.5,), (0.5,), keep_in_memory=False)
    assert kept.squares is not None and streamed.squares is None
    for index in range(len(examples)):
        assert torch.equal(kept[index][0], streamed[index][0]) and kept[index][1] == streamed[index][1]
        assert kept.geometry(index) == streamed.geometry(index)
    big = PreprocessConfig(int((IN_MEMORY_BYTES / 4 / len(examples)) ** 0.5) + 1)  # just over the budget
    assert PreparedImages(examples, labels, big, (0.5,), (0.5,)).squares is None
