"""Case store: local folder and Hugging Face Hub backends (``mammo.store.cases``).

The Hub tests run the real ``huggingface_hub`` and ``datasets`` clients against the small
Hub-protocol server in ``tests/hub_server.py`` on 127.0.0.1. Not covered: Xet transfer (the
clients use the legacy LFS protocol here), real Hub permissions and rate limits.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hub_server import HubServer
from huggingface_hub import DatasetCard
from PIL import Image, PngImagePlugin

from mammo import imaging
from mammo.choices import WITHDRAWAL_REASONS
from mammo.config import settings
from mammo.data import case_examples
from mammo.imaging import encode_png
from mammo.store._fs import file_lock
from mammo.store._hub import HubError, HubUnavailable
from mammo.store.cases import (
    METADATA_FIELDS,
    CaseStore,
    HubCaseStore,
    StoreError,
    corrections,
    open_case_store,
    validate_metadata,
)
from mammo.store.cases import local as cases_local
from mammo.store.cases.compaction import write_merged
from mammo.store.cases.corrections import correction_file
from mammo.timestamps import human_time

pytestmark = pytest.mark.filterwarnings(  # raised inside huggingface_hub's LFS upload
    "ignore:Use 'content=<...>' to upload raw bytes:DeprecationWarning"
)

LABELS = ["normal", "benign", "malignant"]
REPO = "mammo-test/cases"
ROOT = Path(__file__).resolve().parents[1]


def grey(seed: int, size: int = 64) -> np.ndarray:
    """A distinct 64 x 64 grey image in [0, 1]."""
    return np.random.default_rng(seed).random((size, size), dtype=np.float32)


def as_uint16(image: np.ndarray) -> np.ndarray:
    return np.rint(image.astype(np.float64) * 65535).astype(np.uint16)


def shards(root: Path) -> list[Path]:
    return sorted((root / "data").glob("*.parquet"))


def stored_pngs(root: Path) -> list[bytes]:
    return [
        row["bytes"]
        for path in shards(root)
        for row in pq.read_table(path, columns=["image"]).column("image").to_pylist()
    ]


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """A fresh datasets cache per test, so no test reads another's cached arrow files."""
    cache = tmp_path_factory.mktemp("datasets_cache")
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    monkeypatch.setattr(datasets.config, "DOWNLOADED_DATASETS_PATH", cache / "downloads")
    monkeypatch.setattr(datasets.config, "EXTRACTED_DATASETS_PATH", cache / "downloads" / "extracted")


@pytest.fixture
def store(tmp_path: Path):
    with CaseStore(LABELS, tmp_path / "cases") as opened:
        yield opened


# -- local backend -------------------------------------------------------------------------------
def test_append_gives_receipt_and_load_dataset_reads_the_case(store: CaseStore) -> None:
    image = grey(1)
    receipt = store.append(image, "benign", {"view": "MLO", "birads": 4, "age": 57})
    assert receipt["label"] == "benign"
    assert receipt["status"] == "stored"
    assert receipt["total_cases"] == 1
    assert receipt["counts"] == {"normal": 0, "benign": 1, "malignant": 0}
    assert receipt["duplicate_of"] is None
    assert len(receipt["case_id"]) == 32

    (shard,) = shards(store.root)
    assert shard.name.startswith("train-") and shard.name.endswith(".parquet")
    for ds in (datasets.load_dataset(str(store.root), split="train"), store.load()):
        assert ds.num_rows == 1
        row = ds[0]
        assert row["case_id"] == receipt["case_id"]
        assert ds.features["label"].int2str(row["label"]) == "benign"
        assert set(METADATA_FIELDS) <= set(ds.column_names)
        assert (row["view"], row["birads"], row["age"]) == ("MLO", 4, 57)
        assert row["density"] is None and row["notes"] is None
        pixels = np.array(row["image"])
        assert pixels.dtype == np.uint16
        np.testing.assert_array_equal(pixels, as_uint16(image))
    assert store.recent(5) == [
        {
            "case_id": receipt["case_id"],
            "label": "benign",
            "submitted_at": receipt["submitted_at"],
            "metadata": {"view": "MLO", "birads": 4, "age": 57},
        }
    ]


def test_empty_store_loads_an_empty_dataset_with_the_schema(store: CaseStore) -> None:
    ds = store.load()
    assert ds.num_rows == 0
    assert ds.features["label"].names == LABELS
    assert store.counts() == dict.fromkeys(LABELS, 0)
    assert store.recent() == []


def test_loading_keeps_one_arrow_copy_of_the_store(store: CaseStore) -> None:
    def builds(dataset: datasets.Dataset) -> list[Path]:
        version = Path(dataset.cache_files[0]["filename"]).parent.parent
        return sorted(p for p in version.iterdir() if (p / "dataset_info.json").is_file())

    store.append(grey(1), "normal")
    first = store.load()
    assert Path(first.cache_files[0]["filename"]).is_relative_to(store.root / ".cache")
    store.append(grey(2), "benign")
    second = store.load()
    assert len(builds(second)) == 2  # the first build is minutes young: another process may be making it
    for build in builds(second):
        os.utime(build, (time.time() - 3600,) * 2)
    store.append(grey(3), "malignant")
    third = store.load()
    assert builds(third) == [Path(third.cache_files[0]["filename"]).parent]  # older whole copies deleted
    assert len(third) == 3 and third.features["label"].int2str(third[2]["label"]) == "malignant"
    assert first[0]["case_id"] == third[0]["case_id"]  # an old load still reads (memory-mapped)
    assert len(store.load()) == 3 and builds(store.load()) == builds(third)  # unchanged store: same build


def test_the_arrow_copy_keeps_a_shard_of_small_cases_in_one_record_batch(store: CaseStore) -> None:
    """Opening the copy reads every record batch's header, and the kernel maps in the pages around
    each: datasets' 100-row batches for images cost 65 MiB of resident memory at 100 000 small
    cases (scripts/bench_store.py)."""
    receipt = store.append_many([(grey(i), LABELS[i % 3], None) for i in range(250)])
    loaded = store.load()
    assert len(loaded.data.to_batches()) == 1 and sorted(loaded["case_id"]) == sorted(receipt["case_ids"])


def test_stored_png_keeps_no_exif_or_text(store: CaseStore, tmp_path: Path) -> None:
    pixels = (grey(2) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x010E] = "PATIENT Jane Doe 1970-01-01"  # ImageDescription
    jpeg = io.BytesIO()
    Image.fromarray(pixels).save(jpeg, format="JPEG", exif=exif)
    info = PngImagePlugin.PngInfo()
    info.add_text("PatientName", "Jane Doe")
    png_path = tmp_path / "with_text.png"
    Image.fromarray(np.flipud(pixels)).save(png_path, pnginfo=info, exif=exif)
    assert b"Jane Doe" in jpeg.getvalue() and b"Jane Doe" in png_path.read_bytes()

    store.append(jpeg.getvalue(), "normal")
    store.append(png_path, "malignant")

    pngs = stored_pngs(store.root)
    assert len(pngs) == 2
    for data in pngs:
        assert data.startswith(b"\x89PNG")
        assert b"Jane Doe" not in data
        for chunk in (b"eXIf", b"tEXt", b"iTXt", b"zTXt"):
            assert chunk not in data
        with Image.open(io.BytesIO(data)) as im:
            assert im.mode.startswith("I;16") and not im.getexif() and "PatientName" not in im.info


def test_html_notes_are_stored_verbatim_as_plain_text(store: CaseStore) -> None:
    notes = '<script>alert("x")</script> <b>mass</b> upper outer quadrant\nsecond line'
    store.append(grey(3), "benign", {"notes": notes, "biopsy_confirmed": "yes"})
    row = store.load()[0]
    assert row["notes"] == notes
    assert row["biopsy_confirmed"] is True


@pytest.mark.parametrize("notes", ["spiculated mass at 2 o'clock, 12 mm, BI-RADS 5; 2.5 x 1.8 cm",
                                   "stable since the 2019-2021 priors", "compare with 2018 and 2020 studies",
                                   "Dr review requested; MS lesion unlikely", "Miss rate discussed",
                                   # breast MRI and other imaging abbreviations, in any case (a review)
                                   "Correlate with MR Breast", "Prior MR BI-RADS 4",
                                   "MR Guided biopsy advised",
                                   "FINDINGS: MR SHOWS NO ENHANCEMENT", "Seen on MR. Benign appearance",
                                   "Compare with prior MR\nImpression: benign", "MRS Choline peak",
                                   "DR Mammography", "CR/DR Tomosynthesis", "Known MS Lesions", "SR Report",
                                   "TR 4.5 ms TE 2 ms", "Mx Follow-up", "TE 30 ms Echo", "MS Excel sheet",
                                   "Dr A review", "see Dr B",
                                   # month names that are words here (a date is refused: above)
                                   "lesions 1 and 3 may be benign", "mass dec 5 mm since prior",
                                   "may increase in 6 months", "Dec. density, aug 2 foci",
                                   # in capitals too, and "sep" for separate (a review)
                                   "Dec 5 mm from prior study", "MASS DEC 5 MM", "2 sep foci",
                                   "2 sep. lesions", "calcs 2 dec in number", "Nov 3 cm",
                                   # measurements, versions and a patient described, not named
                                   "sizes 12.5 13.5 14.2 mm", "v1.2.3 model", "Patient: Known BRCA carrier",
                                   "patient: 54 yo, dense breasts", "mass (at) 3.5 cm from nipple",
                                   # from a review of the guard: patients described, ranges, versions
                                   "Patient: Post Menopausal", "Patient: Female\nHistory: palpable lump",
                                   "Lesions 12-15 20-25 mm", "Age 40-50 50-60", "software 10.120.4455",
                                   "lesion (at) anecdotal finding",
                                   # names that are words, and eponyms, beside the name lists
                                   "Will return in 6 months", "Pt: Will Return", "Rose Bengal stain",
                                   "May Thurner syndrome", "Paget Disease suspected", "Mondor Disease",
                                   "Cooper Ligament thickening", "Hope Clinic referral",
                                   "Patient: Asymptomatic Screening", "Pt: Dense Breasts",
                                   "Left Breast Upper Outer Quadrant", "MR SHOWS NO MASS", "MS LESION",
                                   # reports in capitals, whose words are also surnames (a review)
                                   "MR POST CONTRAST IMAGES SHOW",
                                   "FURTHER EVALUATION WITH MR MAY BE CONSIDERED",
                                   "MR BEST SEEN ON SUBTRACTION", "HISTORY OF MS MAY EXPLAIN",
                                   "Mark Clip placed",
                                   # surnames before a comma, and a caret, in words that are no names
                                   "SMALL, MARK CLIP PLACED", "LONG, MAY BE CONSIDERED", "count 10^3",
                                   # (a review: a given name that is a report's word after a comma)
                                   "Size: Small, Max 5 mm", "SIZE: SMALL, MAX 5 MM",
                                   "Margin: Clear, Frank invasion absent", "Small, Mark clip placed",
                                   "Brown, Amber fluid aspirated", "ratio mass^size"])
def test_clinical_notes_are_not_taken_for_identifiers(notes: str) -> None:
    assert validate_metadata({"notes": notes})["notes"] == notes


@pytest.mark.parametrize(
    ("label", "metadata", "message"),
    [
        ("cancer", None, "Unknown label"),
        ("normal", {"patient_name": "Jane Doe"}, "Unknown metadata field"),
        ("normal", {"notes": "<p>" + "x" * 100_000 + "</p>"}, "limit is 2000"),
        ("normal", {"birads": 7}, "between 0 and 6"),
        ("normal", {"birads": "four"}, "whole number"),
        ("normal", {"birads": True}, "whole number"),
        ("normal", {"age": 12}, "between 18 and 120"),
        ("normal", {"age": "--5"}, "whole number"),
        ("normal", {"age": "\u00b2"}, "whole number"),  # a superscript two: isdigit() says yes
        # an absurd number is not echoed whole (a probe's 400 digits came back in the refusal)
        ("normal", {"age": "9" * 400}, r"must be a whole number, got '9{36}\.\.\.\.$"),
        ("normal", {"age": 10**400}, r"must be between 18 and 120, got 10{36}\.\.\.\.$"),
        ("normal", {"view": "AP"}, "CC, MLO"),
        ("normal", {"laterality": 1}, "must be text"),
        ("normal", {"biopsy_confirmed": "maybe"}, "yes/no"),
        ("normal", {"notes": "line\x00break\x1b[31m"}, "control characters"),
        ("normal", {"notes": "a\ud800b"}, r"control characters or broken ones \(an unpaired surrogate\)"),
        ("normal", {"notes": "Patient Jane Doe, MRN 12345678, DOB 1968-02-03"},
         r"seems to hold a patient identifier \(a date, a long number .*, an identifier's label"),
        ("normal", {"notes": "seen 03/02/2026"}, r"identifier \(a date\)"),
        # dates with the month in words (a walk stored all three; "reviewed 03 Mar 2024" through the API)
        ("normal", {"notes": "follow-up 3 March 2024"}, r"identifier \(a date\)"),
        ("normal", {"notes": "reviewed 03 Mar 2024"}, r"identifier \(a date\)"),
        ("normal", {"notes": "seen on March 3, 2024"}, r"identifier \(a date\)"),
        ("normal", {"notes": "biopsy 12-Mar-2024"}, r"identifier \(a date\)"),
        ("normal", {"notes": "born in May 1961"}, r"identifier \(a date\)"),
        ("normal", {"notes": "seen Sept. 12th"}, r"identifier \(a date\)"),
        ("normal", {"notes": "on the 3rd of may"}, r"identifier \(a date\)"),
        # and, from a review: a RIS's compact dates, slashes, the year first, "of", an apostrophe
        ("normal", {"notes": "exam 12MAR2024"}, r"identifier \(a date\)"),
        ("normal", {"notes": "exam 12MAR24"}, r"identifier \(a date\)"),
        ("normal", {"notes": "seen 3/Mar/2024"}, r"identifier \(a date\)"),
        ("normal", {"notes": "seen Mar-03-2024"}, r"identifier \(a date\)"),
        ("normal", {"notes": "seen 2024-Mar-03"}, r"identifier \(a date\)"),
        ("normal", {"notes": "in March of 2024"}, r"identifier \(a date\)"),
        ("normal", {"notes": "prior Dec '23"}, r"identifier \(a date\)"),
        ("normal", {"notes": "on may 3rd"}, r"identifier \(a date\)"),
        ("normal", {"notes": "call 020 7946 0958"}, "a long number"),
        ("normal", {"notes": "no 123-45-6789"}, "a long number"),
        ("normal", {"notes": "ask jane.doe@example.org"}, "an e-mail address"),
        ("normal", {"notes": "Mrs Jane Smith, follow-up"}, r"\(a name after a title"),  # seen on a walk
        ("normal", {"notes": "per Dr. Okafor"}, r"\(a name after a title"),
        # seen on an API walk: a title in capitals, after a tab, or not English
        ("normal", {"notes": "MRS SMITH"}, r"\(a name after a title"),
        ("normal", {"notes": "Mrs\tSmith"}, r"\(a name after a title"),
        ("normal", {"notes": "Herr Müller, Mme Dupont"}, r"\(a name after a title"),
        ("normal", {"notes": "Sr. Garcia"}, r"\(a name after a title"),
        # and, from a review: a dotted title in capitals, a title in lower case, a non-breaking space
        ("normal", {"notes": "DR. OKAFOR"}, r"\(a name after a title"),
        ("normal", {"notes": "seen by dr Okafor"}, r"\(a name after a title"),
        ("normal", {"notes": "Mrs\u00a0Smith"}, r"\(a name after a title"),
        # initials between the title and the name (carried over from a walk: "Dr J Smith" passed)
        ("normal", {"notes": "reported by Dr J Smith"}, r"\(a name after a title"),
        ("normal", {"notes": "Prof. A. B. Okafor"}, r"\(a name after a title"),
        # from a fault probe: a phone with full stops, an ID after letters, invisible characters, an
        # e-mail address spelt out
        ("normal", {"notes": "call 555.123.4567"}, "a long number"),
        ("normal", {"notes": "ref ABC-1234567"}, "a long number"),
        ("normal", {"notes": "Mrs\u200bSmith"}, r"\(a name after a title"),
        ("normal", {"notes": "Dr\u00adOkafor"}, r"\(a name after a title"),
        ("normal", {"notes": "MRN\u200b 1234\u200b5678"}, "a long number"),
        ("normal", {"notes": "M\u200bRN 1234"}, "an identifier's label"),
        ("normal", {"notes": "ask jane.doe@exa\u200bmple.org"}, "an e-mail address"),
        ("normal", {"notes": "ask jane.doe(at)example.org"}, "an e-mail address"),
        ("normal", {"notes": "ask jane [at] example dot org"}, "an e-mail address"),
        # names by the lists of names (a review: these passed every shape)
        ("normal", {"notes": "Patient: Jane Smith"}, r"\(a person's name\)"),
        ("normal", {"notes": "Pt: Jane Okafor, 54 yo"}, r"\(a person's name\)"),
        ("normal", {"notes": "MS SMITH"}, r"\(a person's name\)"),
        ("normal", {"notes": "discussed with Maria Garcia"}, r"\(a person's name\)"),
        ("normal", {"notes": "Jean Dupont, suivi"}, r"\(a person's name\)"),
        # and, from a review: a name after another word, outside Latin-1, in full-width letters
        ("normal", {"notes": "Dear Jane Smith"}, r"\(a person's name\)"),
        ("normal", {"notes": "Łukasz Kowalski, Maria Kowalska"}, r"\(a person's name\)"),
        ("normal", {"notes": "Ｊａｎｅ Ｓｍｉｔｈ"}, r"\(a person's name\)"),
        ("normal", {"notes": "MR JOHN SMITH."}, r"\(a person's name\)"),
        # a record's surname first, and a DICOM name pasted from a viewer
        ("normal", {"notes": "Smith, Jane; screening"}, r"\(a person's name\)"),
        ("normal", {"notes": "KOWALSKA, ANNA"}, r"\(a person's name\)"),
        ("normal", {"notes": "from DOE^JANE study"}, r"\(a person's name\)"),
        # (a review: before another word, and after another comma)
        ("normal", {"notes": "Smith, Jane CC view"}, r"\(a person's name\)"),
        ("normal", {"notes": "SMITH, JANE LCC"}, r"\(a person's name\)"),
        ("normal", {"notes": "Seen today, Smith, Jane"}, r"\(a person's name\)"),
        ("normal", ["view", "CC"], "mapping"),
    ],
)
def test_invalid_submission_is_refused_and_store_unchanged(
    store: CaseStore, label: str, metadata: object, message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        store.append(grey(4), label, metadata)  # type: ignore[arg-type]
    assert shards(store.root) == []
    assert store.load().num_rows == 0
    assert store.counts() == dict.fromkeys(LABELS, 0)


def test_unreadable_or_oversized_image_is_refused(store: CaseStore, tmp_path: Path) -> None:
    with pytest.raises(StoreError):
        store.append(b"not an image at all", "normal")
    with pytest.raises(StoreError):
        store.append(np.full((64, 64), 2.0), "normal")  # outside [0, 1]
    with pytest.raises(StoreError):
        store.append(tmp_path / "missing.png", "normal")
    big = tmp_path / "big.png"
    Image.fromarray(as_uint16(grey(9, size=256))).save(big)
    with CaseStore(LABELS, store.root, max_bytes=big.stat().st_size - 1) as small:
        with pytest.raises(StoreError, match="MB"):
            small.append(big, "normal")
    assert shards(store.root) == []


def test_a_colour_picture_is_refused_saying_why_and_nothing_is_stored(store: CaseStore, tmp_path: Path
                                                                      ) -> None:
    from sklearn.datasets import load_sample_images

    photograph = tmp_path / "temple.png"
    Image.fromarray(load_sample_images().images[0]).save(photograph)
    with pytest.raises(StoreError, match=r"^Not a film: it is a colour picture, \d+% of its non-dark "
                                         "pixels in colour.*Submit the film itself"):
        store.append(photograph, "benign")
    with pytest.raises(StoreError, match="^Nothing was stored: temple.png: Not a film: it is a colour"):
        store.append_many([(grey(1), "normal", None), (photograph, "benign", None)],
                          names=["film.png", "temple.png"])
    assert shards(store.root) == [] and store.counts() == dict.fromkeys(LABELS, 0)


def test_a_blank_image_is_refused_and_a_batch_says_once_that_nothing_was_stored(store: CaseStore,
                                                                                tmp_path: Path) -> None:
    blank = tmp_path / "blank.png"
    Image.new("L", (80, 96), 255).save(blank)
    for image in (blank, np.zeros((64, 64))):
        with pytest.raises(StoreError, match="^The image is blank: every pixel has the same value"):
            store.append(image, "normal")
    with pytest.raises(StoreError) as refused:  # its own message starts so too: said once
        store.append_many([(grey(2), "normal", {"notes": "seen by Mrs Smith"})], names=["a.png"])
    assert str(refused.value).startswith("Nothing was stored: a.png: Notes seems to hold")
    assert str(refused.value).count("Nothing was stored") == 1
    assert shards(store.root) == []


def test_a_store_refuses_a_folder_with_another_label_set(store: CaseStore) -> None:
    store.append(grey(16), "normal")
    with pytest.raises(StoreError, match="one label set"):
        CaseStore(["normal", "abnormal"], store.root)


def test_duplicate_image_names_the_earlier_case(store: CaseStore) -> None:
    image = grey(5)
    first = store.append(image, "benign")
    same_pixels = io.BytesIO()
    Image.fromarray(as_uint16(image)).save(same_pixels, format="PNG")  # another encoding
    with pytest.raises(StoreError, match=first["case_id"]) as caught:
        store.append(same_pixels.getvalue(), "malignant")
    assert caught.value.duplicate_of == first["case_id"]
    assert "already submitted" in str(caught.value)
    # when, as the receipt says it ("2 Dec 2026, 16:52 UTC"), not the stored ISO stamp
    assert f"(benign, submitted {human_time(first['submitted_at'])})" in str(caught.value)
    assert store.counts() == {"normal": 0, "benign": 1, "malignant": 0}
    assert len(shards(store.root)) == 1


def test_two_stores_on_one_folder_see_each_other(tmp_path: Path) -> None:
    root = tmp_path / "cases"
    with CaseStore(LABELS, root) as a, CaseStore(LABELS, root) as b:
        receipt = a.append(grey(6), "normal")
        with pytest.raises(StoreError, match=receipt["case_id"]):
            b.append(grey(6), "normal")
        assert b.append(grey(7), "benign")["total_cases"] == 2


def test_another_process_shards_are_found_through_the_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "cases"
    with CaseStore(LABELS, root) as a:
        a.append(grey(1), "normal")
    (root / ".shards").unlink()  # a store from before the journal, or a writer killed before journaling
    with CaseStore(LABELS, root) as a, CaseStore(LABELS, root) as b:
        assert not (root / ".shards").exists()  # opening indexes nothing: the index is built on first use
        assert a.counts() == b.counts() == {"normal": 1, "benign": 0, "malignant": 0}  # lists data/, journals
        assert (root / ".shards").read_text().split() == [p.name for p in shards(root)]
        with (root / ".shards").open("a") as journal:
            journal.write("train-killed-mid-append")  # a torn last line: no newline
        monkeypatch.setattr(os, "listdir", lambda *_: pytest.fail("data/ listed after open"))
        receipt = a.append(grey(2), "benign")
        with pytest.raises(StoreError, match=receipt["case_id"]):  # b found a's shard through the journal
            b.append(grey(2), "malignant")
        assert b.append(grey(3), "malignant")["total_cases"] == 3
        assert a.counts() == b.counts() == {"normal": 1, "benign": 1, "malignant": 1}
    lines = (root / ".shards").read_text().splitlines()
    assert lines[1] == "train-killed-mid-append"  # the torn line was ended, not continued
    assert sorted(lines[2:]) == sorted(p.name for p in shards(root))[1:]


def test_32_threads_appending_at_once_give_32_readable_cases(store: CaseStore) -> None:
    start = threading.Barrier(32)

    def submit(i: int) -> str:
        start.wait()
        return store.append(grey(100 + i), LABELS[i % 3], {"age": 40 + i})["case_id"]

    with ThreadPoolExecutor(32) as pool:
        ids = list(pool.map(submit, range(32)))
    assert len(set(ids)) == 32
    ds = store.load()
    assert sorted(ds["case_id"]) == sorted(ids)
    assert len(shards(store.root)) == 32
    assert store.counts() == {"normal": 11, "benign": 11, "malignant": 10}


def test_append_many_writes_one_shard(store: CaseStore) -> None:
    items = [(grey(200 + i), LABELS[i % 3], {"view": "CC"}) for i in range(5)]
    receipt = store.append_many(items)
    assert len(receipt["case_ids"]) == 5 and receipt["total_cases"] == 5
    assert receipt["counts"] == {"normal": 2, "benign": 2, "malignant": 1}
    assert receipt["status"] == "stored"
    assert len(shards(store.root)) == 1
    assert sorted(store.load()["case_id"]) == sorted(receipt["case_ids"])

    bad = [(grey(300), "normal", None), (grey(301), "normal", {"birads": 9})]
    with pytest.raises(StoreError, match="^Nothing was stored: item 2: ") as refused:
        store.append_many(bad)
    assert "take it out and submit the others again" in str(refused.value)
    assert "submit the others" not in refused.value.logged  # the log keeps what happened
    with pytest.raises(StoreError) as refused:  # no other to submit: nothing to take out
        store.append_many(bad[1:])
    assert "submit the others" not in str(refused.value)
    # more refused than the message details: the rest are named too, to be taken out (the log counts them)
    many = [(grey(310), "normal", None), *((grey(311 + i), "normal", {"birads": 9}) for i in range(12))]
    with pytest.raises(StoreError) as refused:
        store.append_many(many, names=[f"f{i}.png" for i in range(13)])
    said = str(refused.value)
    assert said.startswith("Nothing was stored: 12 of the 13 images cannot be stored. f1.png: ")
    assert said.endswith(" And 2 more: f11.png, f12.png. The batch is stored whole or not at all: take them "
                         "out and submit the others again.")
    assert refused.value.logged.endswith(" And 2 more.") and "f11" not in refused.value.logged
    with pytest.raises(StoreError, match="already submitted"):
        store.append_many([(grey(302), "normal", None), (grey(200), "normal", None)])
    assert len(shards(store.root)) == 1

    again = store.append_many(
        [(grey(303), "benign", None), (grey(200), "normal", None)], skip_duplicates=True
    )
    assert len(again["case_ids"]) == 1
    assert again["skipped"] == [{"index": 1, "duplicate_of": receipt["case_ids"][0], "name": "item 2"}]
    assert store.load().num_rows == 6


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from mammo.store.cases import CaseStore

    store = CaseStore(["normal", "benign", "malignant"], sys.argv[1])
    rng = np.random.default_rng(int(sys.argv[2]))
    print("ready", flush=True)
    while True:
        receipt = store.append(rng.random((64, 64)), "benign", {"notes": "x" * 500})
        print(receipt["case_id"], flush=True)
    """
)


def test_sigkill_during_appends_never_breaks_load(tmp_path: Path) -> None:
    root = tmp_path / "cases"
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    rng = random.Random(0)
    printed: list[str] = []
    for run in range(4):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(root), str(run)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.4))  # somewhere in the middle of an append
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        printed += [line for line in out.splitlines() if line]

    assert printed, "the writer never completed an append"
    with CaseStore(LABELS, root) as store:
        ds = store.load()
        assert set(printed) <= set(ds["case_id"])
        assert ds.num_rows == sum(pq.read_metadata(p).num_rows for p in shards(root))
        assert store.counts()["benign"] == ds.num_rows
        store.append(grey(400), "normal")  # and the store still takes cases


def test_open_case_store_is_local_without_hub_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path))
    monkeypatch.delenv("MAMMO_DATASET_REPO", raising=False)
    with open_case_store(LABELS) as opened:
        assert type(opened) is CaseStore
        opened.append(grey(8), "normal")
    assert len(shards(tmp_path / "cases")) == 1


# -- compaction ------------------------------------------------------------------------------------
def submitted_one_by_one(store: CaseStore, n: int, first_seed: int = 100) -> list[dict]:
    """``n`` cases as the Submit tab stores them: one shard each, labels and metadata varied."""
    return [store.append(grey(first_seed + i), LABELS[i % 3], {"view": "CC"} if i % 2 else None)
            for i in range(n)]


def snapshot(store: CaseStore) -> dict:
    """Everything a reader sees of the store's cases, shard layout aside."""
    loaded = store.load()
    columns = (loaded[name] for name in ("case_id", "label", "view", "submitted_at"))
    rows = sorted(zip(*columns, strict=True))
    return {"rows": rows, "counts": store.counts(), "recent": store.recent(5)}


def test_compaction_merges_small_shards_and_keeps_every_case(store: CaseStore, tmp_path: Path) -> None:
    big = store.append_many([(grey(i), "normal", None) for i in range(3)])  # a batch: not small at 3
    receipts = submitted_one_by_one(store, 7)
    other = CaseStore(LABELS, store.root)  # another process's view, indexed before the merge
    assert other.counts() == store.counts()
    before = snapshot(store)
    pngs = {r["case_id"]: store.case_png(r["case_id"]) for r in receipts}
    assert len(shards(store.root)) == 8

    merges = store.compact(small=2)
    assert merges == {"shards_merged": 7, "shards_written": 1, "cases": 7}
    assert len(shards(store.root)) == 2 and not (store.root / ".compaction").exists()
    assert snapshot(store) == before  # each case once, nothing changed
    assert {r["case_id"]: store.case_png(r["case_id"]) for r in receipts} == pngs
    assert {r["case_id"]: other.case_png(r["case_id"]) for r in receipts} == pngs  # its shard moved
    assert snapshot(other) == before
    with pytest.raises(StoreError, match=receipts[0]["case_id"]):  # duplicates still found
        store.append(grey(100), "benign")
    assert snapshot(CaseStore(LABELS, store.root)) == before  # a fresh open
    assert store.compact(small=2) == {"shards_merged": 0, "shards_written": 0, "cases": 0}
    assert big["case_ids"][0] in store.load()["case_id"]


def test_compaction_in_batches_of_the_largest_size(store: CaseStore) -> None:
    submitted_one_by_one(store, 7)
    # groups of 3 cases; the one left over stays as it is (merging it alone would change nothing)
    assert store.compact(small=2, largest=3) == {"shards_merged": 6, "shards_written": 2, "cases": 6}
    assert sorted(pq.read_metadata(path).num_rows for path in shards(store.root)) == [1, 3, 3]


def test_a_merged_shard_is_sorted_by_case_id_in_row_groups_of_about_8_mb(tmp_path: Path) -> None:
    """So that reading one case from it reads one row group (the others are skipped by their
    case-id statistics), even with full-field films of several MB each."""
    rng = np.random.default_rng(0)
    sources = [pa.table({"case_id": [uuid], "image": [rng.bytes(3 * 2**20)]})
               for uuid in (f"{rng.integers(1 << 60):016x}" for _ in range(8))]
    assert write_merged(sources, tmp_path / "merged.parquet") == 8
    shard = pq.ParquetFile(tmp_path / "merged.parquet")
    ranges = [(shard.metadata.row_group(i).column(0).statistics.min,
               shard.metadata.row_group(i).column(0).statistics.max) for i in range(shard.num_row_groups)]
    assert shard.num_row_groups == 4  # 2 films of 3 MB per group
    assert ranges == sorted(ranges) and all(a[1] < b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    wanted = sources[5]["case_id"][0].as_py()
    found = pq.read_table(tmp_path / "merged.parquet", filters=[("case_id", "==", wanted)])
    assert found["image"].to_pylist() == sources[5]["image"].to_pylist()


class Killed(BaseException):
    """Stands for SIGKILL at one point of a merge: nothing after it runs, no cleanup either."""


@pytest.mark.parametrize("killed", ["before the merged shard is in place", "before its sources are deleted"])
@pytest.mark.parametrize("next_reader", ["a process already running", "a new process"])
def test_a_compaction_killed_halfway_is_finished_or_undone_before_the_cases_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, killed: str, next_reader: str
) -> None:
    root = tmp_path / "cases"
    with CaseStore(LABELS, root) as store:
        receipts = submitted_one_by_one(store, 4)
        before = snapshot(store)
        sources = [p.name for p in shards(root)]
    running = CaseStore(LABELS, root)  # e.g. the app, while `cases compact` runs beside it
    assert running.counts() == before["counts"]
    real_replace, real_fsync_dir = os.replace, cases_local.fsync_dir

    def replace_but_into_data(src: Path, dst: Path) -> None:
        if Path(dst).parent == root / "data":
            raise Killed
        real_replace(src, dst)

    def fsync_dir_but_data(folder: Path) -> None:  # the first fsync of data/ follows the rename
        if Path(folder) == root / "data":
            raise Killed
        real_fsync_dir(folder)

    with monkeypatch.context() as patch, CaseStore(LABELS, root) as store:
        if killed.startswith("before the merged"):  # the plan is written, the merged shard is not renamed
            patch.setattr(cases_local.os, "replace", replace_but_into_data)
        else:  # the merged shard is in data/ beside its sources
            patch.setattr(cases_local, "fsync_dir", fsync_dir_but_data)
        with pytest.raises(Killed):
            store.compact(small=2)
    assert (root / ".compaction").exists()
    reader = running if next_reader.startswith("a process already") else CaseStore(LABELS, root)
    assert snapshot(reader) == before  # each case exactly once, whichever half was done
    assert not (root / ".compaction").exists()
    names = [p.name for p in shards(root)]
    assert names == sources if killed.startswith("before the merged") else len(names) == 1
    assert all(reader.case_png(r["case_id"]) == running.case_png(r["case_id"]) for r in receipts)
    assert reader.compact(small=2)["shards_written"] == (1 if killed.startswith("before the merged") else 0)
    assert snapshot(CaseStore(LABELS, root)) == before


def test_a_load_in_progress_holds_a_compaction_back(
    store: CaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted_one_by_one(store, 3)
    names = [p.name for p in shards(store.root)]
    waiting = threading.Event()

    @contextlib.contextmanager
    def noting_file_lock(path: Path, *args: object, **kwargs: object) -> Iterator[bool]:
        if Path(path).name == ".load.lock" and not kwargs.get("shared"):
            waiting.set()  # compact() asks for the load lock exclusively
        with file_lock(path, *args, **kwargs) as held:
            yield held

    monkeypatch.setattr(cases_local, "file_lock", noting_file_lock)
    with ThreadPoolExecutor(1) as pool:
        with file_lock(store.root / ".load.lock", shared=True):  # what load() holds while it reads data/
            compaction = pool.submit(store.compact, small=2)
            assert waiting.wait(10)
            time.sleep(0.2)
            assert not compaction.done() and [p.name for p in shards(store.root)] == names
        assert compaction.result(timeout=30)["shards_written"] == 1


# -- Hub backend ---------------------------------------------------------------------------------
@pytest.fixture
def hub_env(hub_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Settings pointing the case store at the test Hub (token and endpoint from the fixture)."""
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MAMMO_DATASET_REPO", REPO)
    return hub_server


def hub_store(**options) -> HubCaseStore:
    s = settings()
    outbox = s.home / "outbox" / REPO.replace("/", "--")
    return HubCaseStore(LABELS, REPO, s, outbox, **{"retry_base_s": 0.05, "retry_cap_s": 0.2, **options})


def repo_shards(server) -> list[str]:
    return [p for p in server.files(REPO) if p.startswith("data/")]


def count_calls(server, route: str) -> int:
    """How many POSTs the server got on ``route`` (e.g. "commit/main") of the case repo."""
    return sum(1 for m, p in server.calls if m == "POST" and p.endswith(f"{REPO}/{route}"))


def test_hub_append_is_readable_with_load_dataset(hub_env) -> None:
    server = hub_env
    with open_case_store(LABELS) as store:
        assert isinstance(store, HubCaseStore)
        receipt = store.append(grey(10), "malignant", {"laterality": "R"})
        assert receipt["status"] == "stored"
        assert receipt["total_cases"] == 1
        assert store.pending() == 0

        ds = datasets.load_dataset(REPO, split="train")
        assert ds["case_id"] == [receipt["case_id"]]
        assert ds.features["label"].int2str(ds[0]["label"]) == "malignant"
        assert ds[0]["laterality"] == "R"
        np.testing.assert_array_equal(np.array(ds[0]["image"]), as_uint16(grey(10)))
        assert store.load()["case_id"] == [receipt["case_id"]]

    # no silent fallback: the shard is on the Hub, the local case folder was never used
    assert len(repo_shards(server)) == 1
    assert not (settings().home / "cases").exists()
    card = server.read(REPO, "README.md").decode()
    assert "not a medical device" in card
    meta = DatasetCard(card).data  # read as the Hub reads it
    assert meta.license == "cc-by-4.0" and meta.task_categories == ["image-classification"]
    assert "mammography" in meta.tags and meta.pretty_name == "mammo contributed cases"
    assert "dataset_info" not in card and "configs" not in meta.to_dict()


def test_hub_down_then_back_delivers_the_queued_case_once(hub_env) -> None:
    server = hub_env
    with hub_store() as store:
        server.stop()
        started = time.monotonic()
        receipt = store.append(grey(11), "benign")
        assert time.monotonic() - started < 5  # no long client retry loop in the request
        assert receipt["status"] == "queued"
        assert "unreachable" in receipt["warning"]
        assert receipt["total_cases"] == 1
        assert store.pending() == 1
        with pytest.raises(HubUnavailable, match="unreachable"):
            store.load()
        commits_before = count_calls(server, "commit/main")

        server.restart()
        deadline = time.monotonic() + 15
        while store.pending() and time.monotonic() < deadline:  # the worker's own retries
            time.sleep(0.05)
        assert store.pending() == 0
        assert len(repo_shards(server)) == 1
        assert count_calls(server, "commit/main") == commits_before + 1
        ds = store.load()
        assert ds["case_id"] == [receipt["case_id"]]


@pytest.mark.parametrize("hub_down", [False, True], ids=["hub-slow", "hub-down"])
def test_a_submission_waits_only_briefly_behind_an_upload_in_progress(hub_env, hub_down: bool) -> None:
    """huggingface_hub retries a failing upload for ~23 s, holding the outbox's upload lock: a
    submission behind it is queued after a bounded wait, saying whether the Hub is down or slow."""
    server = hub_env
    with hub_store(submit_wait_s=1.0) as store, ThreadPoolExecutor(1) as pool:  # the app waits 5 s
        commits = count_calls(server, "commit/main")
        server.commits_open.clear()  # the next upload hangs at the Hub, holding the upload lock
        try:
            in_progress = pool.submit(store.append, grey(16), "normal")
            deadline = time.monotonic() + 10
            while count_calls(server, "commit/main") == commits and time.monotonic() < deadline:
                time.sleep(0.02)
            assert store.outbox.upload_lock.locked()
            if hub_down:
                server.stop()
            started = time.monotonic()
            receipt = store.append(grey(17), "benign")
            assert time.monotonic() - started < 1.0 + 3
            assert receipt["status"] == "queued" and receipt["total_cases"] == 2
            assert ("unreachable" if hub_down else "is slow") in receipt["warning"]
        finally:
            server.commits_open.set()  # never leave the server's handler (and this test) hanging
        first = in_progress.result(timeout=30)
        assert first["status"] == "stored"
        server.start()
        assert store.wait_until_delivered(15)
        assert sorted(store.load()["case_id"]) == sorted([first["case_id"], receipt["case_id"]])
    assert len(repo_shards(server)) == 2


def test_hub_compaction_is_one_commit_that_adds_the_merged_shard_and_deletes_the_rest(
    hub_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = hub_env
    with hub_store() as store:
        receipts = submitted_one_by_one(store, 4)
        assert len(repo_shards(server)) == 4
        before = snapshot(store)
        commits = server.commit_count(REPO)
        assert store.compact(small=2) == {"shards_merged": 4, "shards_written": 1, "cases": 4}
        assert server.commit_count(REPO) == commits + 1
        assert len(repo_shards(server)) == 1
        assert snapshot(store) == before
        assert store.case_png(receipts[1]["case_id"]) == stored_png_of(server, receipts[1]["case_id"])
        after = store.append(grey(200), "normal")
        assert after["status"] == "stored" and after["total_cases"] == 5
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "other-machine"))
    with hub_store() as fresh:  # indexes the merged shard and the new one
        assert fresh.counts() == {"normal": 3, "benign": 1, "malignant": 1}
        every_id = [r["case_id"] for r in receipts] + [after["case_id"]]
        assert sorted(fresh.load()["case_id"]) == sorted(every_id)


def test_hub_compaction_leaves_a_shard_still_in_the_outbox(hub_env) -> None:
    """A commit whose answer was lost: the shard is on the Hub and still queued here. Merging it
    would make the outbox upload it again (it would no longer find it under its name)."""
    server = hub_env
    with hub_store() as store:
        submitted_one_by_one(store, 2)
        store.outbox.close()  # no delivery from here on: the shard below stays queued
        server.lose_commit_responses = 1
        lost = store.append(grey(300), "malignant")
        assert lost["status"] == "queued" and store.pending() == 1
        assert store.compact(small=2) == {"shards_merged": 2, "shards_written": 1, "cases": 2}
        assert len(repo_shards(server)) == 2  # the merged shard and the one still queued here
        server.stop()  # closing cannot deliver it either
    assert store.pending() == 1
    server.restart()
    with hub_store() as reopened:  # delivery finds the queued shard on the Hub: not sent again
        assert reopened.wait_until_delivered(15)
        ids = reopened.load()["case_id"]
        assert len(ids) == len(set(ids)) == 3 and lost["case_id"] in ids


def test_another_machine_reads_a_case_the_hub_merge_moved(
    hub_env, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    server = hub_env
    with hub_store() as first:
        receipts = submitted_one_by_one(first, 3)
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "other-machine"))
    with hub_store() as other:  # indexed the three one-case shards
        monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "home"))
        with hub_store() as first:
            assert first.compact(small=2)["shards_written"] == 1
        assert len(repo_shards(server)) == 1
        for receipt in receipts:  # its index names shards the Hub no longer has
            assert other.case_png(receipt["case_id"]) == stored_png_of(server, receipt["case_id"])
        assert other.counts() == {"normal": 1, "benign": 1, "malignant": 1}


def stored_png_of(server: HubServer, case_id: str) -> bytes:
    """A case's PNG read straight from the server's copy of the repo."""
    for path in repo_shards(server):
        table = pq.read_table(pa.BufferReader(server.read(REPO, path)), columns=["case_id", "image"])
        if case_id in table.column("case_id").to_pylist():
            return table.column("image")[table.column("case_id").to_pylist().index(case_id)].as_py()["bytes"]
    raise AssertionError(f"{case_id} is in no shard of the repo")


def test_hub_outbox_survives_a_process_restart(hub_env) -> None:
    server = hub_env
    server.stop()
    first = hub_store()  # opens while the Hub is down
    receipt = first.append(grey(12), "normal", {"density": "b"})
    assert receipt["status"] == "queued"
    started = time.monotonic()
    first.close()  # tries to deliver, and the Hub does not answer: closes at once
    assert time.monotonic() - started < 5
    assert first.pending() == 1

    server.restart()
    with hub_store() as second:
        assert second.wait_until_delivered(15)
        assert second.counts() == {"normal": 1, "benign": 0, "malignant": 0}
        assert second.load()["density"] == ["B"]
    assert len(repo_shards(server)) == 1


def test_a_restart_during_an_outage_knows_the_cases_this_disk_read(hub_env) -> None:
    """Indexed from the outbox alone, a restart while the Hub was down counted one case, stored a
    duplicate and took back a withdrawn case's image (a Hub probe); reading a stored case's image then
    went through the client's retry loop (23 s, and a withdrawal's check held every submission)."""
    server = hub_env
    with hub_store() as first:
        kept = first.append(grey(31), "benign")
        gone = first.append(grey(32), "malignant")
        first.withdraw(gone["case_id"], "consent withdrawn")
        assert first.wait_until_delivered(15) and first.pending() == 0  # all of it in the repo alone
    server.stop()
    with hub_store() as second:  # the same disk, restarted with the Hub down
        assert second.counts() == {"normal": 0, "benign": 1, "malignant": 0}
        with pytest.raises(StoreError, match=kept["case_id"]):
            second.append(grey(31), "benign")
        with pytest.raises(StoreError, match=f"{gone['case_id']}.*withdrawn"):
            second.append(grey(32), "normal")
        started = time.monotonic()
        with pytest.raises(HubUnavailable):  # its image (no copy kept here): said at once, not in 23 s
            second.case_png(gone["case_id"], withdrawn_too=True)
        assert time.monotonic() - started < 5
        assert second.append(grey(33), "normal")["status"] == "queued"
        # what the outbox kept of a delivered shard: the columns the index reads, no image
        kept = pq.read_table(next((second.root / ".delivered").glob("*.parquet")))
        assert "image" not in kept.column_names and "case_id" in kept.column_names
    server.restart()
    with hub_store() as third:  # and an image this disk's Hugging Face cache holds is read from it
        assert third.case_png(kept_id := kept["case_id"][0].as_py(), withdrawn_too=True)
        server.stop()
        started = time.monotonic()
        assert third.case_png(kept_id, withdrawn_too=True)
        assert time.monotonic() - started < 5


def test_a_repo_with_audit_events_and_no_case_loads_no_case(hub_env) -> None:
    """With no case shard, load_dataset read the audit events' JSON as the cases: one event loaded as
    one "case", and events of two shapes failed a first retrain (DatasetGenerationError; a Hub probe)."""
    events = [{"at": "2026-12-05T10:00:00Z", "action": "rollback",
               "details": {"version": "v2", "replaced": "v1"}},
              {"at": "2026-12-05T10:01:00Z", "action": "retrain started", "details": {"served": "v2"}}]
    with hub_store() as store:
        for i, event in enumerate(events):
            store.outbox.queue_file("audit", f"2026120510000{i}000000Z-{i}.json", json.dumps(event).encode())
        assert store.wait_until_delivered(15)
        assert store.load().num_rows == 0
        store.append(grey(51), "benign")
        assert store.load()["label"] == [LABELS.index("benign")]


def test_a_shard_the_other_process_sent_first_is_no_failure(hub_env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes on one outbox: the other's worker sends and drops the shard while this one uploads
    it. The receipt said "queued" with a server path (a review): the case is on the Hub, stored."""
    with hub_store() as store:
        upload = store.api.upload_file

        def sent_by_the_other_process_too(**kwargs):
            answer = upload(**kwargs)
            Path(kwargs["path_or_fileobj"]).unlink()
            return answer

        monkeypatch.setattr(store.api, "upload_file", sent_by_the_other_process_too)
        receipt = store.append(grey(201), "benign")
        assert receipt["status"] == "stored" and "warning" not in receipt


def test_merged_or_erased_shards_are_forgotten_at_the_next_connect(hub_env) -> None:
    """The outbox's kept columns of a shard the repo no longer holds (merged, or rewritten to erase a
    case) would count its cases again and know an erased image's pixels at a restart during an outage."""
    server = hub_env
    with hub_store() as store:
        ids = [store.append(grey(100 + i), "benign")["case_id"] for i in range(3)]
        assert store.wait_until_delivered(15)
        assert store.compact(small=3)["shards_written"] == 1
    with hub_store() as reopened:
        kept = sorted(p.name for p in (reopened.root / ".delivered").glob("*.parquet"))
        assert kept == []  # the three sources, merged away
        assert reopened.counts()["benign"] == 3
    server.stop()
    with hub_store() as during:  # the merged shard was never delivered from here: known by the cache
        assert during.counts()["benign"] == 3
        with pytest.raises(StoreError, match=ids[0]):
            during.append(grey(100), "benign")
    server.restart()


def test_two_servers_on_one_repo_learn_each_others_cases_at_each_check(hub_env, tmp_path: Path) -> None:
    """Two replicas each took the other's image again as a new case, and their counts drifted apart,
    until a restart (a Hub probe): each check of the repo indexes the shards stored there since."""
    with hub_store() as one, HubCaseStore(LABELS, REPO, settings(), tmp_path / "other-outbox",
                                          retry_base_s=0.05, retry_cap_s=0.2) as two:
        stored = one.append(grey(41), "benign")
        assert one.wait_until_delivered(15)
        two.fetch_amendments()  # the app's follow loop, every MAMMO_FOLLOW_SECONDS
        assert two.counts() == {"normal": 0, "benign": 1, "malignant": 0}
        with pytest.raises(StoreError, match=stored["case_id"]):
            two.append(grey(41), "benign")


def test_closing_delivers_what_waits_when_the_hub_answers(hub_env, caplog: pytest.LogCaptureFixture) -> None:
    """A Space's disk is new after every restart: a store that closes (the app stopping) first
    delivers what its outbox holds, here a case queued while the Hub was down."""
    server = hub_env
    store = hub_store(retry_base_s=600, retry_cap_s=600)  # the worker does not retry within the test
    server.stop()
    with caplog.at_level(logging.WARNING, logger="mammo.store.cases.outbox"):
        receipt = store.append(grey(14), "benign")
        assert receipt["status"] == "queued"
        deadline = time.monotonic() + 15
        while "retrying in 600.0 s" not in caplog.text:  # the worker has tried once and waits
            assert time.monotonic() < deadline, caplog.text
            time.sleep(0.05)
    server.restart()
    assert store.pending() == 1
    store.close()
    assert store.pending() == 0
    with hub_store() as reopened:
        assert reopened.load()["case_id"] == [receipt["case_id"]]
    assert len(repo_shards(server)) == 1


def test_hub_lost_commit_answer_is_not_uploaded_twice(hub_env) -> None:
    server = hub_env
    with hub_store() as store:
        preuploads = count_calls(server, "preupload/main")
        server.lose_commit_responses = 1  # the commit lands, its answer never arrives
        receipt = store.append(grey(13), "benign")
        assert receipt["status"] == "queued"
        assert store.wait_until_delivered(15)
        commits = count_calls(server, "commit/main")
        assert count_calls(server, "preupload/main") == preuploads + 1  # found there, not re-sent
        assert len(repo_shards(server)) == 1
        assert store.load()["case_id"] == [receipt["case_id"]]
    assert count_calls(server, "commit/main") == commits
    assert server.commit_count(REPO) == 3  # initial, card, the one shard


def test_hub_stores_sharing_an_outbox_see_each_others_delivered_cases(hub_env) -> None:
    """The app and `cases import` on one MAMMO_HOME: a shard the other delivered (and so removed from
    the outbox) before this one read the journal is indexed from the repo."""
    with hub_store() as app, hub_store() as importer:
        assert app.counts() == {"normal": 0, "benign": 0, "malignant": 0}
        receipt = importer.append(grey(16), "malignant")
        assert receipt["status"] == "stored" and importer.pending() == 0  # delivered: out of the outbox
        assert not shards(app.root)
        assert app.counts() == {"normal": 0, "benign": 0, "malignant": 1}
        assert app.recent()[0]["case_id"] == receipt["case_id"]
        with pytest.raises(StoreError, match=receipt["case_id"]):
            app.append(grey(16), "malignant")


def test_a_shard_delivered_by_another_process_while_the_hub_is_down_is_indexed_from_what_it_kept(
    hub_env,
) -> None:
    server = hub_env
    with hub_store() as app, hub_store() as importer:
        assert app.counts()["malignant"] == 0
        receipt = importer.append(grey(17), "malignant")
        assert receipt["status"] == "stored" and importer.pending() == 0
        server.stop()
        started = time.monotonic()
        # from the columns the outbox kept: the Hub alone was asked, and during an outage the other
        # process counted none of its cases and stored their duplicates (a review)
        assert app.counts()["malignant"] == 1
        with pytest.raises(StoreError, match=receipt["case_id"]):
            app.append(grey(17), "malignant")
        assert time.monotonic() - started < 5  # no client retry loop while holding the store's locks
        server.restart()
        assert app.counts()["malignant"] == 1
        with pytest.raises(StoreError, match=receipt["case_id"]):
            app.append(grey(17), "malignant")


def test_hub_index_is_rebuilt_from_the_repo_on_a_fresh_machine(
    hub_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with hub_store() as store:
        first = store.append(grey(14), "benign")
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "other-machine"))
    with hub_store() as fresh:
        assert fresh.counts() == {"normal": 0, "benign": 1, "malignant": 0}
        assert fresh.recent()[0]["case_id"] == first["case_id"]
        with pytest.raises(StoreError, match=first["case_id"]):
            fresh.append(grey(14), "benign")
        assert fresh.append(grey(15), "normal")["total_cases"] == 2


def test_hub_bad_token_is_a_clear_error_at_open(hub_env, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_notthevalidtoken123")
    with pytest.raises(HubError, match=r"token rejected \(401\)") as caught:
        open_case_store(LABELS)
    assert "hf_notthevalidtoken123" not in str(caught.value)
    assert not hub_env.repo_exists(REPO)
    assert not (settings().home / "cases").exists()


def test_one_case_is_read_from_its_own_shard(store: CaseStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first = store.append_many([(grey(i), "benign", None) for i in range(3)])
    single = store.append(grey(10), "malignant", {"age": 50})
    holder = [p.name for p in shards(store.root)
              if first["case_ids"][1] in pq.read_table(p, columns=["case_id"]).column("case_id").to_pylist()]
    reads: list[str] = []
    real_read = pq.read_table
    monkeypatch.setattr(pq, "read_table",
                        lambda path, **kw: reads.append(Path(path).name) or real_read(path, **kw))
    png = store.case_png(first["case_ids"][1])
    assert reads == holder  # the one shard that holds it, not the whole dataset
    assert np.array_equal(imaging.read_image(png), imaging.read_image(encode_png(grey(1))))
    assert imaging.read_image(store.case_png(single["case_id"])).shape == (64, 64)
    with pytest.raises(StoreError, match="No submitted case"):
        store.case_png("no-such-case")


def test_recent_cases_and_duplicates_are_answered_from_the_index(
    store: CaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    older = [store.append(grey(i), "normal", {"age": 40 + i})["case_id"] for i in range(4)]
    batch = store.append_many([(grey(10 + i), "benign", None) for i in range(3)])["case_ids"]
    newest = store.append(grey(20), "malignant", {"view": "CC"})
    reads: list[str] = []
    real_read = pq.read_table
    monkeypatch.setattr(pq, "read_table",
                        lambda path, **kw: reads.append(Path(path).name) or real_read(path, **kw))
    recent = store.recent(4)
    assert [r["case_id"] for r in recent[:1]] == [newest["case_id"]]
    assert {r["case_id"] for r in recent[1:]} == set(batch)  # one batch: one submission time
    assert recent[0]["metadata"] == {"view": "CC"} and recent[1]["label"] == "benign"
    everything = store.recent(100)
    assert [r["case_id"] for r in everything[4:]] == older[::-1]
    assert everything[-1]["metadata"] == {"age": 40}
    assert store.recent(0) == [] and store.recent(-1) == []
    with pytest.raises(StoreError, match=rf"{older[0]} \(normal, submitted \d+ \w+ 20\d\d, "):  # label, time
        store.append(grey(0), "benign")
    assert reads == []  # no shard was opened: a shard only on the Hub needs no download
    first = shards(store.root)[0]
    store._index.add(first.name, pq.read_table(first))  # indexed twice: no effect
    assert [r["case_id"] for r in store.recent(100)] == [r["case_id"] for r in everything]


def test_hub_case_is_read_from_its_shard_once_delivered(hub_env, tmp_path: Path) -> None:
    store = hub_store()
    try:
        receipt = store.append(grey(3), "normal", None)
        assert store.wait_until_delivered(30) and not list((store.root / "data").glob("*.parquet"))
        assert np.array_equal(imaging.read_image(store.case_png(receipt["case_id"])),
                              imaging.read_image(encode_png(grey(3))))
    finally:
        store.close()


# -- label corrections -----------------------------------------------------------------------------
def shard_bytes(root: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in shards(root)}


def loaded_labels(store: CaseStore) -> dict[str, str]:
    """Each case's label as a retrain reads it (through ``case_examples``)."""
    return {example.group: example.label for example in case_examples(store.load())}


def test_a_corrected_label_is_the_case_label_everywhere_and_its_shard_is_kept(store: CaseStore) -> None:
    ids = [store.append(grey(seed), "normal")["case_id"] for seed in (40, 41, 42)]
    before = shard_bytes(store.root)
    receipt = store.correct_label(ids[1], "Malignant")  # spelt as the label set spells it
    assert {k: receipt[k] for k in ("case_id", "label", "was", "status")} == {
        "case_id": ids[1], "label": "malignant", "was": "normal", "status": "stored"}
    assert receipt["counts"] == store.counts() == {"normal": 2, "benign": 0, "malignant": 1}
    assert store.case_label(ids[1]) == "malignant"
    assert {c["case_id"]: c["label"] for c in store.recent()}[ids[1]] == "malignant"
    assert loaded_labels(store) == {ids[0]: "normal", ids[1]: "malignant", ids[2]: "normal"}
    assert store.load().column_names == list(store.features)  # the label column kept in its place
    assert shard_bytes(store.root) == before  # nothing rewritten: the correction is a file of its own
    [correction] = (store.root / "corrections").glob("*.json")
    assert json.loads(correction.read_text())["was"] == "normal"
    with pytest.raises(StoreError, match=r"\(malignant, submitted .*correct the case's label instead"):
        store.append(grey(41), "malignant")  # the duplicate refusal names its label now
    with CaseStore(LABELS, store.root) as reopened:  # another process, or the app after a restart
        assert reopened.case_label(ids[1]) == "malignant" and reopened.counts() == store.counts()


@pytest.mark.parametrize("case, label, refusal", [
    ("c" * 32, "benign", "No submitted case"),
    (None, "benign", "No submitted case"),
    ("first", "normal", "already labelled normal; nothing was changed"),
    ("first", "cancer", "Unknown label 'cancer'; choose one of normal, benign, malignant"),
])
def test_a_correction_that_cannot_apply_is_refused_and_nothing_changes(
    store: CaseStore, case: str | None, label: str, refusal: str
) -> None:
    first = store.append(grey(43), "normal")["case_id"]
    with pytest.raises(StoreError, match=re.escape(refusal)):
        store.correct_label(first if case == "first" else case, label)
    assert not (store.root / "corrections").exists()
    assert store.counts() == {"normal": 1, "benign": 0, "malignant": 0}


def test_the_newest_correction_wins_across_processes_and_survives_compaction(tmp_path: Path) -> None:
    root = tmp_path / "cases"
    with CaseStore(LABELS, root) as a, CaseStore(LABELS, root) as b:
        ids = [a.append(grey(seed), "benign")["case_id"] for seed in (44, 45)]
        a.correct_label(ids[0], "malignant")
        assert b.case_label(ids[0]) == "malignant"  # b indexes after a corrected: read with the shards
        b.correct_label(ids[0], "normal")
        assert a.counts() == {"normal": 1, "benign": 1, "malignant": 0}  # b's correction, seen by a
        late = {"case_id": ids[0], "label": "malignant", "was": "benign"}  # from a clock behind the others'
        (root / "corrections" / "20000101T000000000000Z-late.json").write_text(json.dumps(late))
        assert a.counts() == {"normal": 1, "benign": 1, "malignant": 0}  # read, and older than the rest
        assert a.case_label(ids[0]) == "normal"
        assert a.compact(small=10)["shards_merged"] == 2
        assert a.counts() == b.counts() == {"normal": 1, "benign": 1, "malignant": 0}
        assert a.case_label(ids[0]) == b.case_label(ids[0]) == "normal"  # from the merged shard's rows
        assert {c["case_id"]: c["label"] for c in b.recent()} == {ids[0]: "normal", ids[1]: "benign"}
        assert loaded_labels(b) == {ids[0]: "normal", ids[1]: "benign"}
    with CaseStore(LABELS, root) as c:  # a process opening after the merge: the merged shard only
        assert c.case_label(ids[0]) == "normal" and c.counts() == {"normal": 1, "benign": 1, "malignant": 0}


def test_a_correction_made_after_the_clock_was_set_back_still_holds(
    store: CaseStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = store.append(grey(46), "benign")["case_id"]
    store.correct_label(case, "malignant")
    set_back = datetime(2001, 1, 1, tzinfo=timezone.utc)  # a clock stepped back a long way (a fault probe)
    monkeypatch.setattr(corrections, "utc_now", lambda: set_back)
    receipt = store.correct_label(case, "normal")
    assert receipt["corrected_at"].startswith("2001-01-01")  # what the clock said, kept as it said it
    assert store.case_label(case) == "normal"
    with CaseStore(LABELS, store.root) as reopened:  # read back in file-name order by another process
        assert reopened.case_label(case) == "normal"
        assert reopened.counts() == {"normal": 1, "benign": 0, "malignant": 0}
    (store.root / "corrections" / "by-hand.json").write_text(  # a name of another shape sorts last
        json.dumps({"case_id": case, "label": "normal", "was": "normal"}))
    monkeypatch.undo()
    assert store.correct_label(case, "benign")["label"] == "benign"  # not refused for that name


def test_an_unreadable_or_foreign_correction_is_logged_and_left_out(
    store: CaseStore, caplog: pytest.LogCaptureFixture
) -> None:
    case = store.append(grey(46), "benign")["case_id"]
    folder = store.root / "corrections"
    folder.mkdir()
    (folder / "20260101T000000000000Z-broken.json").write_text('{"case_id": ')
    foreign = {"case_id": case, "label": "cancer"}  # a label of another label set
    (folder / "20260101T000001000000Z-foreign.json").write_text(json.dumps(foreign))
    with caplog.at_level(logging.ERROR), CaseStore(LABELS, store.root) as reopened:
        assert reopened.case_label(case) == "benign"
        assert loaded_labels(reopened) == {case: "benign"}
    assert "broken.json not applied" in caplog.text
    assert "'cancer' is not one of this store's labels" in caplog.text


def test_hub_corrections_reach_the_repo_even_after_an_outage_and_a_fresh_machine_reads_them(
    hub_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = hub_env
    with hub_store() as store:
        ids = [store.append(grey(seed), "normal")["case_id"] for seed in (47, 48)]
        assert store.correct_label(ids[0], "benign")["status"] == "stored"
        server.stop()
        queued = store.correct_label(ids[1], "malignant")
        assert queued["status"] == "queued" and "unreachable" in queued["warning"]
        assert store.case_label(ids[1]) == "malignant"  # here at once; on the Hub once delivered
        server.restart()
        assert store.wait_until_delivered(15)
    assert len([p for p in server.files(REPO) if p.startswith("corrections/")]) == 2
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "other-machine"))
    with hub_store() as fresh:
        assert fresh.counts() == {"normal": 0, "benign": 1, "malignant": 1}
        assert loaded_labels(fresh) == {ids[0]: "benign", ids[1]: "malignant"}


def test_hub_correction_kept_but_never_queued_reaches_the_repo_at_the_next_open(hub_env) -> None:
    """A process stopped between keeping a correction and queueing it for the Hub: the next open
    queues it (and a fresh disk's open fetches the repo's)."""
    server = hub_env
    with hub_store() as store:
        case = store.append(grey(49), "normal")["case_id"]
        kept = store.root / ".corrections"
    name, content, _ = correction_file(case, "benign", "normal")
    kept.mkdir(exist_ok=True)
    (kept / name).write_bytes(content)  # kept here, not in the outbox, not on the Hub
    with hub_store() as reopened:
        assert reopened.case_label(case) == "benign"
        assert reopened.wait_until_delivered(15)
    assert server.read(REPO, f"corrections/{name}") == content


def test_a_machine_opened_while_the_hub_is_down_applies_the_repos_corrections_once_it_is_back(
    hub_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = hub_env
    with hub_store() as store:
        case = store.append(grey(50), "normal")["case_id"]
        store.correct_label(case, "malignant")
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "new-disk"))
    server.stop()
    with hub_store() as fresh:  # opens (cases are queued), knowing nothing of the repo yet
        assert fresh.append(grey(51), "benign")["status"] == "queued"
        assert fresh.counts() == {"normal": 0, "benign": 1, "malignant": 0}
        server.restart()
        assert fresh.wait_until_delivered(15)  # the delivery connects: the repo's shards and corrections
        assert fresh.counts() == {"normal": 0, "benign": 1, "malignant": 1}
        assert fresh.case_label(case) == "malignant"


def test_a_case_is_named_by_its_id_or_its_first_8_characters(store: CaseStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    first = store.append(grey(52), "normal")["case_id"]
    twins = iter(uuid.UUID(f"abcdef12-0000-4000-8000-{i:012x}") for i in range(1, 100))
    monkeypatch.setattr(cases_local.uuid, "uuid4", lambda: next(twins))  # ids that start alike
    for seed in (53, 54):
        store.append(grey(seed), "normal")
    assert store.resolve_case(f" {first[:8].upper()} ") == store.resolve_case(first) == first
    with pytest.raises(StoreError, match="2 cases have ids starting 'abcdef12': give more of the id"):
        store.resolve_case("abcdef12")
    with pytest.raises(StoreError, match="Give at least the first 8 characters of the case id"):
        store.resolve_case(first[:7])  # too short to name one
    with pytest.raises(StoreError, match="No submitted case 'zzzz'"):
        store.resolve_case("zzzz")  # too short, and no case starts so
    assert store.correct_label(first[:8], "benign")["case_id"] == first


# -- withdrawals -----------------------------------------------------------------------------------
WHY = WITHDRAWAL_REASONS[0]


def test_a_withdrawn_case_is_left_out_everywhere_its_image_is_not_taken_again_and_its_shard_is_kept(
    store: CaseStore,
) -> None:
    ids = [store.append(grey(60 + i), label)["case_id"] for i, label in enumerate(LABELS)]
    before = shard_bytes(store.root)
    receipt = store.withdraw(ids[1][:8].upper(), f" {WHY.upper()} ")  # named as the pickers show it
    assert {k: receipt[k] for k in ("case_id", "label", "was", "withdrawn", "status")} == {
        "case_id": ids[1], "label": None, "was": "benign", "withdrawn": WHY, "status": "stored"}
    assert receipt["counts"] == store.counts() == {"normal": 1, "benign": 0, "malignant": 1}
    assert store.case_label(ids[1]) is None
    assert [c["case_id"] for c in store.recent()] == [ids[2], ids[0]]
    assert loaded_labels(store) == {ids[0]: "normal", ids[2]: "malignant"}
    examples = {example.group: example for example in case_examples(store.load())}
    for seed, case_id in ((60, ids[0]), (62, ids[2])):  # each example reads its own case's pixels
        assert np.array_equal(examples[case_id].read(), imaging.read_image(encode_png(grey(seed))))
    assert shard_bytes(store.root) == before  # the shard, and the image in it, is kept
    with pytest.raises(StoreError, match=f"Case {ids[1]} was withdrawn; its image is not shown"):
        store.case_png(ids[1])
    with pytest.raises(StoreError, match=r"since withdrawn, .*not stored again\. A withdrawn case's image is "
                                         r"not taken again\."):
        store.append(grey(61), "benign")
    batch = store.append_many([(grey(61), "benign", None), (grey(60), "normal", None)], skip_duplicates=True)
    assert batch["case_ids"] == [] and [s.get("withdrawn") for s in batch["skipped"]] == [True, None]
    with pytest.raises(StoreError, match="was withdrawn; nothing was changed"):
        store.correct_label(ids[1], "normal")
    with pytest.raises(StoreError, match="was withdrawn; nothing was changed"):
        store.withdraw(ids[1], WHY)
    with CaseStore(LABELS, store.root) as reopened:  # another process, or the app after a restart
        assert reopened.counts() == store.counts() and reopened.case_label(ids[1]) is None
        assert loaded_labels(reopened) == {ids[0]: "normal", ids[2]: "malignant"}
        assert reopened.compact(small=10)["shards_merged"] == 3
        assert reopened.counts() == {"normal": 1, "benign": 0, "malignant": 1}
        assert loaded_labels(reopened) == {ids[0]: "normal", ids[2]: "malignant"}


def test_a_withdrawal_is_final_even_against_a_later_correction_from_another_machine(store: CaseStore) -> None:
    """A machine that had not seen the withdrawal yet corrected the case's label after it: the case
    stays withdrawn, in the index and in every load, whichever order the files are read in."""
    case = store.append(grey(67), "benign")["case_id"]
    store.withdraw(case, WHY)
    later, content, _ = correction_file(case, "malignant", "benign")
    [withdrawal] = (store.root / "corrections").glob("*.json")
    assert later > withdrawal.name  # named after the withdrawal: newer
    (store.root / "corrections" / later).write_bytes(content)
    assert store.case_label(case) is None and store.counts() == {"normal": 0, "benign": 0, "malignant": 0}
    assert loaded_labels(store) == {}
    with CaseStore(LABELS, store.root) as reopened:  # indexed afresh: every file read in order
        assert reopened.case_label(case) is None and loaded_labels(reopened) == {}


def test_another_process_sees_a_withdrawal_at_once(tmp_path: Path) -> None:
    """The app (b) learns of a withdrawal from the command line (a) at its next question: the case's
    label, its pixels' case and its preview, without a restart."""
    root = tmp_path / "cases"
    with CaseStore(LABELS, root) as a, CaseStore(LABELS, root) as b:
        receipt = a.append(grey(68), "normal")
        assert b.case_label(receipt["case_id"]) == "normal"  # b has indexed the case
        a.withdraw(receipt["case_id"], WHY)
        assert b.case_label(receipt["case_id"]) is None
        assert b.case_with_pixels(receipt["image_sha256"]) == receipt["case_id"]  # withdrawn, still known
        with pytest.raises(StoreError, match="was withdrawn"):
            b.case_png(receipt["case_id"])


@pytest.mark.parametrize("reason", ["because I said so", "", None])
def test_a_withdrawal_without_a_listed_reason_is_refused_and_nothing_changes(store: CaseStore,
                                                                             reason: str | None) -> None:
    case = store.append(grey(63), "normal")["case_id"]
    with pytest.raises(StoreError, match="Unknown reason .* for a withdrawal; choose one of: identifier"):
        store.withdraw(case, reason)  # type: ignore[arg-type]
    assert not (store.root / "corrections").exists()
    assert store.counts() == {"normal": 1, "benign": 0, "malignant": 0}


def test_a_withdrawal_without_its_reason_in_the_file_is_logged_and_left_out(
    store: CaseStore, caplog: pytest.LogCaptureFixture
) -> None:
    case = store.append(grey(64), "benign")["case_id"]
    folder = store.root / "corrections"
    folder.mkdir()
    (folder / "20260101T000000000000Z-noreason.json").write_text(json.dumps({"case_id": case, "label": None}))
    with caplog.at_level(logging.ERROR), CaseStore(LABELS, store.root) as reopened:
        assert reopened.case_label(case) == "benign" and loaded_labels(reopened) == {case: "benign"}
    assert "noreason.json not applied: no label and no reason" in caplog.text


def test_hub_withdrawal_reaches_the_repo_and_a_fresh_machine_leaves_the_case_out(
    hub_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = hub_env
    with hub_store() as store:
        ids = [store.append(grey(seed), "normal")["case_id"] for seed in (65, 66)]
        assert store.withdraw(ids[0], WHY)["status"] == "stored"
        assert store.wait_until_delivered(15)
    [name] = [p for p in server.files(REPO) if p.startswith("corrections/")]
    assert json.loads(server.read(REPO, name))["withdrawn"] == WHY
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "other-machine"))
    with hub_store() as fresh:
        assert fresh.counts() == {"normal": 1, "benign": 0, "malignant": 0}
        assert loaded_labels(fresh) == {ids[1]: "normal"}
        with pytest.raises(StoreError, match="was withdrawn"):
            fresh.case_png(ids[0])


def test_a_server_fetches_a_withdrawal_made_elsewhere_without_a_retrain(
    hub_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Space's app (connected, serving) and the command line on a laptop share the Hub repo: the
    laptop's withdrawal reaches the Space's store at its next fetch (the app's follow poll)."""
    monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "space"))
    space = hub_store()
    try:
        case = space.append(grey(69), "normal")["case_id"]
        assert space.wait_until_delivered(15)  # connected to the repo
        monkeypatch.setenv("MAMMO_HOME", str(tmp_path / "laptop"))
        with hub_store() as laptop:
            assert laptop.withdraw(case, WHY)["status"] == "stored"
        assert space.case_label(case) == "normal"  # not fetched yet
        space.fetch_amendments()
        assert space.case_label(case) is None and space.counts() == {"normal": 0, "benign": 0, "malignant": 0}
        with pytest.raises(StoreError, match="was withdrawn"):
            space.case_png(case)
    finally:
        space.close()


def test_fetching_amendments_while_the_hub_is_down_fails_at_once_and_holds_up_no_submission(
    hub_env,
) -> None:
    """The app's follow poll fetches the repo's amendments every few minutes: with the Hub down it
    must answer HubUnavailable without the client's ~23 s retry loop, holding the upload lock (which
    a submission waits for) for none of it; a retrain's load likewise."""
    server = hub_env
    with hub_store(submit_wait_s=1.0) as store, ThreadPoolExecutor(1) as pool:
        store.append(grey(73), "normal")
        assert store.wait_until_delivered(15)  # connected
        server.stop()
        started = time.monotonic()
        fetching = pool.submit(store.fetch_amendments)
        receipt = store.append(grey(74), "benign")
        with pytest.raises(HubUnavailable, match="unreachable"):
            fetching.result(timeout=30)
        with pytest.raises(HubUnavailable, match="unreachable"):
            store.load()
        assert time.monotonic() - started < 10  # the retry loop alone takes ~23 s
        assert receipt["status"] == "queued" and "unreachable" in receipt["warning"]
        server.restart()
        assert store.wait_until_delivered(15)
        store.fetch_amendments()
        assert store.counts() == {"normal": 1, "benign": 1, "malignant": 0}


def test_the_documented_erasure_of_a_withdrawn_case_leaves_a_store_that_opens_whole(
    store: CaseStore,
) -> None:
    """docs/architecture.md, *Withdrawing a case does not erase its image*, done locally as written:
    the shard rewritten without the row under a new name, the old one deleted, `.shards` and `.cache/`
    removed. The store opens with every other case, and no shard holds the image."""
    kept = store.append(grey(70), "normal")["case_id"]
    batch = store.append_many([(grey(71), "benign", None), (grey(72), "malignant", None)])
    gone, other = batch["case_ids"]
    store.withdraw(gone, WHY)
    store.load()  # an Arrow copy in .cache/ that holds the image too
    store.close()
    [shard] = [path for path in shards(store.root) if gone in pq.read_table(path, columns=["case_id"])
               .column("case_id").to_pylist()]
    image = encode_png(grey(71))
    assert image in stored_pngs(store.root)  # as stored: the check below can see it
    table = pq.read_table(shard)
    rewritten = table.filter(pa.compute.not_equal(table.column("case_id"), gone))
    pq.write_table(rewritten, store.root / "data" / cases_local.shard_name(cases_local.utc_now()))
    shard.unlink()
    (store.root / ".shards").unlink()
    shutil.rmtree(store.root / ".cache")
    assert image not in stored_pngs(store.root)
    left = {p.suffix for p in store.root.rglob("*") if p.is_file()}
    assert left <= {".parquet", ".json", ".md", ".lock", ""}  # no Arrow copy
    with CaseStore(LABELS, store.root) as reopened:
        assert reopened.counts() == {"normal": 1, "benign": 0, "malignant": 1}
        assert loaded_labels(reopened) == {kept: "normal", other: "malignant"}
        assert {c["case_id"] for c in reopened.recent()} == {kept, other}
        assert np.array_equal(imaging.read_image(reopened.case_png(other)),
                              imaging.read_image(encode_png(grey(72))))
        with pytest.raises(StoreError, match="No submitted case"):
            reopened.case_png(gone)


def test_every_wrong_metadata_field_is_said_at_once() -> None:
    """A form with a wrong age and an identifier in the notes is refused for both in one message (it
    was refused for the age, then, once mended, for the notes)."""
    with pytest.raises(StoreError) as refused:
        validate_metadata({"age": "150", "notes": "Mrs Jane Smith, left breast", "density": "B"})
    said = str(refused.value)
    assert said.startswith("Nothing was stored: Age in years ('age') must be between 18 and 120, got 150. ")
    assert said.count("Nothing was stored") == 1
    assert "Notes seems to hold a patient identifier" in said and "Density" not in said
