"""The dataset card (``README.md``) of a case store, local or on the Hub."""

from __future__ import annotations

from collections.abc import Sequence

from huggingface_hub import DatasetCardData

from ...config import DISCLAIMER
from .schema import ARROW_TYPES, METADATA_FIELDS

__all__ = ["dataset_card"]


def dataset_card(labels: Sequence[str], title: str = "mammo contributed cases") -> str:
    """README.md of a case dataset: description, schema, licence, disclaimer. Its metadata
    (``DatasetCardData``) has no ``dataset_info`` (shards are added all the time) and no ``configs``
    (with one, ``datasets`` keyed its cache of a local folder on the pattern alone: stale cases)."""
    rows = "\n".join(
        f"| `{name}` | {ARROW_TYPES[f.kind]}, optional | {f.help}"
        + (f" ({', '.join(f.choices)})" if f.choices else "")
        + " |"
        for name, f in METADATA_FIELDS.items()
    )
    front = DatasetCardData(license="cc-by-4.0", pretty_name=title, task_categories=["image-classification"],
                            tags=["medical", "mammography"]).to_yaml()
    return f"""---
{front}
---

# {title}

Labelled mammogram cases contributed through the mammo app, used to retrain its classifier.
Each submission adds one parquet shard under `data/`; shards are never rewritten.
A label corrected later, or a case withdrawn, is a JSON file under `corrections/` (`case_id`,
`label`, `was`, `corrected_at`; a withdrawal has `label` null and `withdrawn`: the reason): the
newest of a case gives its label, and a withdrawn case is not to be used. The mammo app applies
them; `load_dataset` alone gives the cases and labels as submitted.
Images are re-encoded from their pixels as 16-bit greyscale PNG: no EXIF, PNG text or DICOM
tag is kept. Contributors must not submit images or notes that identify a patient.

> **Disclaimer.** {DISCLAIMER}

## Schema

| column | type | meaning |
| --- | --- | --- |
| `image` | Image (PNG) | the mammogram, greyscale |
| `label` | ClassLabel | one of: {", ".join(labels)} |
| `case_id` | string | unique id of the case (uuid4 hex) |
| `submitted_at` | string | submission time, ISO 8601 UTC |
| `image_sha256` | string | SHA-256 of the pixels (duplicate detection) |
{rows}

Free text is stored as plain text exactly as typed (markup is never rendered).

## Licence

Contributed cases are shared under [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/):
by submitting a case, a contributor confirms they may share it under this licence.

## Loading

```python
from datasets import load_dataset
cases = load_dataset("<this repo or folder>", split="train")
```
"""
