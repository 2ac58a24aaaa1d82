"""Tests of scripts/fetch_mias.py on small synthetic archives in the mini-MIAS format."""

from __future__ import annotations

import csv
import importlib.util
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "fetch_mias.py"
_spec = importlib.util.spec_from_file_location("fetch_mias", SCRIPT)
fetch_mias = importlib.util.module_from_spec(_spec)
sys.modules["fetch_mias"] = fetch_mias  # dataclasses look their module up there
_spec.loader.exec_module(fetch_mias)

FILM = 256  # synthetic film edge (MIAS films are 1024)
SIZE = 128  # output edge: scale 0.5
DOT = (60, 200)  # bright dot on mdb001 at (x, y) with the origin at the BOTTOM-left
INFO = f"""\
MIAS synthetic test archive (header: no leading 'mdb')
mdb001 G CIRC B {DOT[0]} {DOT[1]} 10
mdb002 G NORM
mdb003 F CIRC B 100 100 8
mdb003 F CALC B 150 50 5
mdb004 F SPIC M 30 30 12

mdb005 D CALC M *NOTE 3*
mdb006 D ASYM B
"""


def write_film(path: Path, edge: int, seed: int, dot: tuple[int, int] | None = None) -> None:
    """A dark noisy 8-bit PGM film, with a bright 9x9 square centred at ``dot`` (bottom-left)."""
    pixels = np.random.default_rng(seed).integers(0, 40, (edge, edge), dtype=np.uint8)
    if dot is not None:
        row = edge - dot[1]
        pixels[row - 4 : row + 5, dot[0] - 4 : dot[0] + 5] = 255
    Image.fromarray(pixels).save(path, format="PPM")


def make_folder(folder: Path, info: str = INFO, edge: int = FILM) -> Path:
    folder.mkdir(parents=True)
    (folder / "Info.txt").write_text(info)
    (folder / "Licence.txt").write_text("MIAS licence: research use only (synthetic test copy)\n")
    refs = sorted({line.split()[0] for line in info.splitlines() if line.startswith("mdb")})
    for seed, ref in enumerate(refs):
        write_film(folder / f"{ref}.pgm", edge, seed, DOT if ref == "mdb001" else None)
    return folder


def make_tar(folder: Path, archive: Path) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(folder.iterdir()):
            tar.add(path, arcname=path.name)
    return archive


def read_rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "metadata.csv", newline="") as f:
        return {Path(row["file_name"]).stem: row for row in csv.DictReader(f)}


def tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture()
def films(tmp_path: Path) -> Path:
    return make_folder(tmp_path / "all-mias")


def test_folder_layout_labels_and_metadata(films: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert fetch_mias.main([str(films), "--out", str(out), "--size", str(SIZE)]) == 0
    top = sorted(p.name for p in out.iterdir())
    assert top == ["LICENCE.txt", "benign", "malignant", "metadata.csv", "normal"]
    assert (out / "LICENCE.txt").read_text() == (films / "Licence.txt").read_text()
    assert sorted(p.name for p in (out / "normal").iterdir()) == ["mdb002.png"]
    assert sorted(p.name for p in (out / "benign").iterdir()) == [
        "mdb001.png", "mdb003.png", "mdb006.png"
    ]
    assert sorted(p.name for p in (out / "malignant").iterdir()) == ["mdb004.png", "mdb005.png"]
    with open(out / "metadata.csv", newline="") as f:
        assert next(csv.reader(f)) == fetch_mias.COLUMNS
    rows = read_rows(out)
    assert list(rows) == [f"mdb00{i}" for i in range(1, 7)]  # Info.txt order
    assert {ref: row["patient_id"] for ref, row in rows.items()} == {
        "mdb001": "1", "mdb002": "1", "mdb003": "2", "mdb004": "2", "mdb005": "3", "mdb006": "3"
    }
    s = SIZE / FILM
    assert rows["mdb002"] == {
        "file_name": "normal/mdb002.png", "label": "normal", "patient_id": "1", "tissue": "G",
        "abnormality": "NORM", "lesion_x": "", "lesion_y": "", "lesion_radius": "",
    }
    two = rows["mdb003"]  # benign film with two findings, in file order
    assert (two["label"], two["tissue"], two["abnormality"]) == ("benign", "F", "CIRC;CALC")
    assert two["lesion_x"] == f"{100 * s};{150 * s}"
    assert two["lesion_y"] == f"{(FILM - 100) * s};{(FILM - 50) * s}"
    assert two["lesion_radius"] == f"{8 * s};{5 * s}"
    assert rows["mdb004"]["label"] == "malignant"
    assert rows["mdb004"]["lesion_radius"] == f"{12 * s}"
    no_coords = rows["mdb005"]  # "*NOTE 3*" instead of coordinates
    assert (no_coords["label"], no_coords["abnormality"]) == ("malignant", "CALC")
    assert no_coords["lesion_x"] == no_coords["lesion_y"] == no_coords["lesion_radius"] == ""
    assert rows["mdb006"]["lesion_x"] == ""  # severity but no coordinates at all
    with Image.open(out / "benign" / "mdb003.png") as image:
        assert (image.mode, image.size, image.format) == ("L", (SIZE, SIZE), "PNG")


def test_lesion_coordinates_flip_to_top_left(films: Path, tmp_path: Path):
    out = tmp_path / "out"
    assert fetch_mias.main([str(films), "--out", str(out), "--size", str(SIZE)]) == 0
    row = read_rows(out)["mdb001"]
    x, y = float(row["lesion_x"]), float(row["lesion_y"])
    pixels = np.asarray(Image.open(out / row["file_name"]))
    assert pixels[int(y), int(x)] > 200
    assert pixels[int(SIZE - y), int(x)] < 60  # where an unflipped y would point
    assert np.median(pixels) < 60


def test_tar_and_folder_give_identical_output(films: Path, tmp_path: Path):
    archive = make_tar(films, tmp_path / "all-mias.tar.gz")
    from_folder, from_tar = tmp_path / "a", tmp_path / "b"
    assert fetch_mias.main([str(films), "--out", str(from_folder), "--size", str(SIZE)]) == 0
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(archive), "--out", str(from_tar), "--size", str(SIZE)],
        capture_output=True, text=True, timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "wrote 6 films" in done.stdout
    assert tree(from_tar) == tree(from_folder)


def evil_tar(films: Path, archive: Path, member: tarfile.TarInfo) -> Path:
    """The films plus one hostile ``member`` (a file with a payload, or a link)."""
    with tarfile.open(archive, "w:gz") as tar:
        for path in sorted(films.iterdir()):
            tar.add(path, arcname=path.name)
        payload = b"owned" if member.isfile() else b""
        member.size = len(payload)
        tar.addfile(member, io.BytesIO(payload))
    return archive


def test_malicious_tar_member_is_rejected(films: Path, tmp_path: Path, capsys):
    archive = evil_tar(films, tmp_path / "evil.tar.gz", tarfile.TarInfo("../evil"))
    out = tmp_path / "nest" / "out"
    assert fetch_mias.main([str(archive), "--out", str(out)]) == 1
    assert "unsafe member name '../evil'" in capsys.readouterr().err
    assert not out.exists()
    dest = tmp_path / "jail" / "dest"
    dest.parent.mkdir()
    with pytest.raises(ValueError, match="unsafe member"):
        fetch_mias._safe_extract(archive, dest)
    assert list(dest.parent.iterdir()) == []  # nothing extracted, inside or beside dest


@pytest.mark.parametrize("target", ["/etc/passwd", "../../outside"])
def test_tar_links_leaving_the_folder_are_rejected(films: Path, tmp_path: Path, capsys, target):
    link = tarfile.TarInfo("mdb999.pgm")
    link.type, link.linkname = tarfile.SYMTYPE, target
    archive = evil_tar(films, tmp_path / "link.tar.gz", link)
    out = tmp_path / "out"
    assert fetch_mias.main([str(archive), "--out", str(out)]) == 1
    assert "fetch_mias: error:" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("mdb007 F CIRC X 1 2 3", "line 10 'mdb007 F CIRC X 1 2 3': unknown severity 'X'"),
        ("mdb007 F LUMP B 1 2 3", "line 10 'mdb007 F LUMP B 1 2 3': unknown class 'LUMP'"),
        ("mdb007 Q NORM", "unknown tissue 'Q'"),
        ("mdb007 F CIRC B 1 2", "expected three integers"),
        ("mdb002 G CIRC B 1 2 3", "a NORM film cannot have other findings"),
    ],
)
def test_bad_info_lines_are_named(tmp_path: Path, capsys, line: str, message: str):
    folder = make_folder(tmp_path / "src", INFO + line + "\n", edge=32)
    out = tmp_path / "out"
    assert fetch_mias.main([str(folder), "--out", str(out), "--size", "16"]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_missing_image_and_nonempty_out_are_errors(films: Path, tmp_path: Path, capsys):
    (films / "mdb004.pgm").unlink()
    assert fetch_mias.main([str(films), "--out", str(tmp_path / "out")]) == 1
    assert "have no image: mdb004" in capsys.readouterr().err
    write_film(films / "mdb004.pgm", FILM, seed=9)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("nothing lost")
    assert fetch_mias.main([str(films), "--out", str(busy)]) == 1
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in busy.iterdir()] == ["keep.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_rules_reproduce_shared_metadata(tmp_path: Path):
    data_root = os.environ.get("MAMMO_DATA")
    if not data_root:
        pytest.skip("MAMMO_DATA not set: shared mini-MIAS metadata.csv unavailable")
    with open(Path(data_root) / "mias" / "metadata.csv", newline="") as f:
        reader = csv.DictReader(f)
        assert reader.fieldnames == fetch_mias.COLUMNS
        shared = {Path(row["file_name"]).stem: row for row in reader}
    info = (
        "mdb005 F CIRC B 477 133 30\n"
        "mdb005 F CIRC B 500 168 26\n"
        "mdb006 F NORM\n"
        "mdb144 F MISC B 233 994 29\n"
        "mdb144 F MISC M 313 540 27\n"
    )
    folder = make_folder(tmp_path / "real", info, edge=1024)
    out = tmp_path / "out"
    assert fetch_mias.main([str(folder), "--out", str(out), "--size", "512"]) == 0
    rows = read_rows(out)
    for ref in ("mdb005", "mdb006", "mdb144"):
        assert rows[ref] == shared[ref], ref
    assert rows["mdb144"]["label"] == "malignant"
