"""Bulk zip import (never extracted to disk) and the access rules."""

from __future__ import annotations

import dataclasses
import io
import zipfile
from pathlib import Path

import pytest

from mammo.access import AccessDenied, can_submit, can_train
from mammo.bulk import BulkError, zip_cases
from mammo.config import settings


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def test_zip_cases_reads_labels_from_folders(tmp_path: Path) -> None:
    path = _zip(tmp_path / "cases.zip", {
        "export/benign/a.png": b"A", "export/malignant/b.png": b"BB", "__MACOSX/benign/._a.png": b"x",
        "export/.DS_Store": b"x",
    })
    assert sorted(zip_cases(path, 100)) == [(b"A", "benign", "a.png"), (b"BB", "malignant", "b.png")]


@pytest.mark.parametrize(
    ("members", "limit", "message"),
    [
        ({"a.png": b"A"}, 100, r"not inside a label folder \(such as benign/a.png\)"),
        ({"benign/a.png": b"A" * 200}, 100, "limit"),
        ({"readme/.hidden": b""}, 100, "no images"),
        # documents only: said so, and named
        ({"benign/readme.txt": b"x", "DICOMDIR": b"x"}, 100,
         r"no images .*: only documents \(benign/readme.txt, DICOMDIR\)"),
    ],
)
def test_zip_errors(tmp_path: Path, members: dict, limit: int, message: str) -> None:
    with pytest.raises(BulkError, match=message):
        list(zip_cases(_zip(tmp_path / "x.zip", members), limit))


def test_not_a_zip_and_too_many_files(tmp_path: Path) -> None:
    (tmp_path / "bad.zip").write_bytes(b"no zip here")
    with pytest.raises(BulkError, match="not a readable zip"):
        list(zip_cases(tmp_path / "bad.zip", 100))
    many = _zip(tmp_path / "many.zip", {f"benign/{i}.png": b"x" for i in range(5)})
    with pytest.raises(BulkError, match="at most 3"):
        list(zip_cases(many, 100, max_files=3))


def test_a_zip_may_unpack_to_four_times_the_file_limit_in_all(tmp_path: Path) -> None:
    fits = _zip(tmp_path / "fits.zip", {f"benign/{i}.png": bytes(100) for i in range(4)})
    assert len(list(zip_cases(fits, 100))) == 4
    bomb = tmp_path / "bomb.zip"  # zeros compress to almost nothing
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for i in range(5):
            archive.writestr(f"benign/{i}.png", bytes(100_000))
    assert bomb.stat().st_size < 5_000
    with pytest.raises(BulkError, match=r"unpacks to 0.5 MB; at most 0.4 MB per upload"):
        next(zip_cases(bomb, 100_000))  # refused before any member is read


def _flip_stored_byte(path: Path, data: bytes) -> None:
    raw = path.read_bytes()
    at = raw.index(data)
    path.write_bytes(raw[:at] + bytes([raw[at] ^ 0xFF]) + raw[at + 1:])


def test_a_damaged_or_encrypted_member_is_a_bulk_error(tmp_path: Path) -> None:
    damaged = _zip(tmp_path / "damaged.zip", {"benign/a.png": b"PNG-ish bytes " * 4})
    _flip_stored_byte(damaged, b"PNG-ish bytes " * 4)  # the stored data no longer match their CRC
    with pytest.raises(BulkError, match="'benign/a.png' is damaged in the zip") as refused:
        list(zip_cases(damaged, 1000))
    # the app logs the refusal without the member's name (a file name can name a patient)
    assert refused.value.logged.startswith("a member of the zip is damaged in the zip")
    assert "a.png" not in refused.value.logged
    encrypted = _zip(tmp_path / "encrypted.zip", {"benign/a.png": b"A"})
    raw = bytearray(encrypted.read_bytes())
    for signature, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # local and central headers
        at = raw.index(signature) + flags_at
        raw[at] |= 0x01  # "encrypted"
    encrypted.write_bytes(bytes(raw))
    with pytest.raises(BulkError, match="'benign/a.png' cannot be read: .*encrypted"):
        list(zip_cases(encrypted, 1000))


def test_zip_member_names_never_become_paths(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil/benign/x.png", b"X")  # climbing names are skipped
        archive.writestr("/abs/malignant/y.png", b"Y")
        archive.writestr("ok/normal/z.png", b"Z")
    (tmp_path / "evil.zip").write_bytes(buffer.getvalue())
    assert list(zip_cases(tmp_path / "evil.zip", 100)) == [(b"Y", "malignant", "y.png"),
                                                           (b"Z", "normal", "z.png")]
    assert not (tmp_path.parent.parent / "evil").exists() and not Path("/abs").exists()


def test_access_rules() -> None:
    base = dataclasses.replace(settings(), trainers=frozenset(), submitters=frozenset(), on_spaces=False)
    assert can_train(None, base).allowed and "local install" in can_train(None, base).reason
    space = dataclasses.replace(base, on_spaces=True)
    assert not can_train("anyone", space).allowed
    listed = dataclasses.replace(base, trainers=frozenset({"alice"}), submitters=frozenset({"bob"}))
    assert can_train("alice", listed).allowed
    assert not can_train("bob", listed).allowed and not can_train(None, listed).allowed
    assert can_submit("bob", listed).allowed and not can_submit("alice", listed).allowed
    assert can_submit(None, base).allowed
    with pytest.raises(AccessDenied, match="MAMMO_TRAINERS"):
        can_train("bob", listed).require()
