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
        ({"a.png": b"A"}, 100, "not inside a <label>/ folder"),
        ({"benign/a.png": b"A" * 200}, 100, "limit"),
        ({"readme/.hidden": b""}, 100, "no images"),
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
