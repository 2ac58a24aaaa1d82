"""Convert the public mini-MIAS archive into mammo's imagefolder layout.

Usage: ``python scripts/fetch_mias.py [SOURCE] --out DIR [--size 512] [--url URL] [--push-to OWNER/NAME]``

SOURCE is a downloaded ``all-mias.tar.gz``, a folder holding ``Info.txt`` and the
``mdbNNN.pgm`` films, or an http(s) URL; without SOURCE the archive is downloaded from
``--url`` (PEIPA). Output: ``DIR/<label>/mdbNNN.png`` (8-bit grey, ``--size`` square, area
averaged), ``DIR/LICENCE.txt`` (the archive's Licence.txt) and ``DIR/metadata.csv`` with
the columns of ``COLUMNS``:

- label: ``normal`` for NORM films, else the most severe finding (any M: malignant, else benign);
- patient_id: ``(NNN + 1) // 2`` (the left and right films of one woman are consecutive);
- abnormality: the film's distinct finding classes in file order, joined by ``;``;
- lesion_x / lesion_y / lesion_radius: each finding's centre and radius in output pixels with
  the origin at the TOP-left (Info.txt counts y from the bottom), joined by ``;``; findings
  without coordinates (diffuse findings, ``*NOTE*``) are left out, so normal films and films
  whose findings all lack coordinates have them empty.

``--push-to OWNER/NAME`` then uploads DIR as a **private** Hub dataset repo (HF_TOKEN; HF_ENDPOINT),
for a Space's ``MAMMO_BASE_DATA``: the MIAS licence allows research use but no redistribution, so
the repo must stay private (an existing public repo is refused).

Standalone: needs Pillow only (and huggingface_hub for ``--push-to``). Citation and licence: see
the MIAS ``Licence.txt``.
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

__all__ = [
    "COLUMNS",
    "DEFAULT_URL",
    "Finding",
    "Film",
    "parse_info",
    "convert_folder",
    "convert",
    "main",
]

DEFAULT_URL = "http://peipa.essex.ac.uk/pix/mias/all-mias.tar.gz"
COLUMNS = [
    "file_name", "label", "patient_id", "tissue", "abnormality",
    "lesion_x", "lesion_y", "lesion_radius",
]
TISSUES = ("F", "G", "D")
CLASSES = ("CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "NORM")
SEVERITIES = {"B": "benign", "M": "malignant"}
_REF = re.compile(r"mdb\d{3}")


@dataclass(frozen=True)
class Finding:
    """One Info.txt line: class, severity (None for NORM), centre and radius in film pixels."""

    abnormality: str
    severity: str | None
    x: int | None = None
    y: int | None = None  # origin at the bottom-left of the film
    radius: int | None = None


@dataclass
class Film:
    """One mammogram with its findings, in Info.txt order."""

    ref: str
    tissue: str
    findings: list[Finding]

    @property
    def label(self) -> str:
        if self.findings[0].abnormality == "NORM":
            return "normal"
        return "malignant" if any(f.severity == "M" for f in self.findings) else "benign"

    @property
    def patient_id(self) -> int:
        return (int(self.ref[3:]) + 1) // 2


def parse_info(text: str) -> dict[str, Film]:
    """Films of an Info.txt, in file order; lines not starting with ``mdb`` are skipped."""
    films: dict[str, Film] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line.startswith("mdb"):
            continue
        where = f"Info.txt line {number} {line!r}"
        ref, tissue, finding = _parse_line(line, where)
        film = films.setdefault(ref, Film(ref, tissue, []))
        if tissue != film.tissue:
            raise ValueError(f"{where}: tissue {tissue} differs from {film.tissue} on {ref}")
        if film.findings and "NORM" in {finding.abnormality, film.findings[0].abnormality}:
            raise ValueError(f"{where}: a NORM film cannot have other findings")
        film.findings.append(finding)
    if not films:
        raise ValueError("Info.txt lists no films (no line starts with 'mdb')")
    return films


def _parse_line(line: str, where: str) -> tuple[str, str, Finding]:
    tokens = line.split()
    if len(tokens) < 3 or not _REF.fullmatch(tokens[0]):
        raise ValueError(f"{where}: expected 'mdbNNN TISSUE CLASS [SEVERITY X Y RADIUS]'")
    ref, tissue, abnormality, rest = tokens[0], tokens[1], tokens[2], tokens[3:]
    if tissue not in TISSUES:
        raise ValueError(f"{where}: unknown tissue {tissue!r} (expected one of {TISSUES})")
    if abnormality not in CLASSES:
        raise ValueError(f"{where}: unknown class {abnormality!r} (expected one of {CLASSES})")
    if abnormality == "NORM":
        if rest:
            raise ValueError(f"{where}: a NORM line has no severity or coordinates")
        return ref, tissue, Finding(abnormality, None)
    if not rest or rest[0] not in SEVERITIES:
        found = rest[0] if rest else "nothing"
        raise ValueError(f"{where}: unknown severity {found!r} (expected B or M)")
    coords = rest[1:]
    if not coords or coords[0].startswith("*"):  # diffuse finding or "*NOTE n*": no centre
        return ref, tissue, Finding(abnormality, rest[0])
    if len(coords) != 3 or not all(c.isascii() and c.isdigit() for c in coords):
        raise ValueError(f"{where}: expected three integers X Y RADIUS after the severity")
    x, y, radius = (int(c) for c in coords)
    return ref, tissue, Finding(abnormality, rest[0], x, y, radius)


def convert_folder(folder: Path, out: Path, size: int = 512) -> list[dict[str, str]]:
    """Convert a folder holding Info.txt and mdbNNN.pgm films; returns the metadata rows."""
    info = _find_info(folder)
    films = parse_info(info.read_text(encoding="latin-1"))
    missing = [ref for ref in films if not (info.parent / f"{ref}.pgm").is_file()]
    if missing:
        raise FileNotFoundError(f"films listed in {info} have no image: {', '.join(missing)}")
    unlisted = sorted(p.name for p in info.parent.glob("mdb*.pgm") if p.stem not in films)
    if unlisted:
        print(f"warning: images not listed in Info.txt, skipped: {unlisted}", file=sys.stderr)
    out = out.resolve()
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"output folder {out} is not empty")
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        rows = [_convert_film(film, info.parent, staging, size) for film in films.values()]
        _copy_licence(info.parent, staging)
        with open(staging / "metadata.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            writer.writerows(rows)
        os.replace(staging, out)  # the output appears whole or not at all
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return rows


def _copy_licence(films_dir: Path, out: Path) -> None:
    """Keep the MIAS licence beside the data as ``LICENCE.txt`` (it travels with the images)."""
    names = ("licence.txt", "license.txt")
    found = [p for p in films_dir.iterdir() if p.name.lower() in names and p.is_file()]
    if found:
        shutil.copyfile(found[0], out / "LICENCE.txt")
    else:
        print(f"warning: no Licence.txt in {films_dir}; the MIAS licence applies", file=sys.stderr)


def _find_info(folder: Path) -> Path:
    found = [p for p in folder.rglob("*") if p.name.lower() == "info.txt" and p.is_file()]
    if len(found) != 1:
        raise FileNotFoundError(f"expected one Info.txt under {folder}, found {len(found)}")
    return found[0]


def _convert_film(film: Film, films_dir: Path, out: Path, size: int) -> dict[str, str]:
    source = films_dir / f"{film.ref}.pgm"
    with Image.open(source) as image:
        if image.mode != "L":
            raise ValueError(f"{source}: expected an 8-bit grey PGM, got mode {image.mode}")
        width, height = image.size
        if width != height:
            raise ValueError(f"{source}: expected a square film, got {width}x{height}")
        small = image.resize((size, size), Image.Resampling.BOX)
    (out / film.label).mkdir(exist_ok=True)
    file_name = f"{film.label}/{film.ref}.png"
    small.save(out / file_name)
    scale = size / width
    marked = [f for f in film.findings if f.x is not None]
    return {
        "file_name": file_name,
        "label": film.label,
        "patient_id": str(film.patient_id),
        "tissue": film.tissue,
        "abnormality": ";".join(dict.fromkeys(f.abnormality for f in film.findings)),
        "lesion_x": _join(f.x * scale for f in marked),
        "lesion_y": _join((height - f.y) * scale for f in marked),
        "lesion_radius": _join(f.radius * scale for f in marked),
    }


def _join(values) -> str:
    """Floats as the shared metadata.csv writes them (``238.5``, ``15.0``), joined by ``;``."""
    return ";".join(repr(round(float(v), 4)) for v in values)


def convert(
    source: str | None, out: Path, size: int = 512, url: str = DEFAULT_URL
) -> list[dict[str, str]]:
    """Convert a tar.gz, a folder or a URL (``url`` when ``source`` is None) into ``out``."""
    if size < 1:
        raise ValueError(f"--size must be positive, got {size}")
    with tempfile.TemporaryDirectory(prefix="mias-") as tmp:
        if source is None or source.startswith(("http://", "https://")):
            archive = Path(tmp) / "all-mias.tar.gz"
            print(f"downloading {source or url}", file=sys.stderr)
            urllib.request.urlretrieve(source or url, archive)
            source = str(archive)
        path = Path(source)
        if path.is_dir():
            return convert_folder(path, out, size)
        if not path.is_file():
            raise FileNotFoundError(f"source {path} does not exist")
        if not tarfile.is_tarfile(path):
            raise ValueError(f"source {path} is neither a folder nor a tar archive")
        extracted = Path(tmp) / "extracted"
        _safe_extract(path, extracted)
        return convert_folder(extracted, out, size)


def _safe_extract(archive: Path, dest: Path) -> None:
    """Extract into ``dest`` only: absolute or ``..`` member names are refused."""
    with tarfile.open(archive, "r:*") as tar:
        for member in tar.getmembers():
            parts = member.name.replace("\\", "/").split("/")
            if member.name.startswith(("/", "\\")) or ".." in parts:
                raise ValueError(f"unsafe member name {member.name!r} in {archive}")
        dest.mkdir()
        tar.extractall(dest, filter="data")


HUB_CARD = """---
license: other
license_name: mias
pretty_name: mini-MIAS (converted by mammo, private copy)
---
# mini-MIAS, converted for mammo

The Mammographic Image Analysis Society's mini-MIAS films in mammo's imagefolder layout
(`<label>/<file>.png`, `metadata.csv` with patient ids and lesion marks), made with
`python scripts/fetch_mias.py --push-to`. **Keep this repository private**: the MIAS licence
(`LICENCE.txt`) allows research use and asks to cite the database, and forbids renting, leasing
or selling it; it is not ours to redistribute. Citation: J Suckling et al (1994) "The Mammographic
Image Analysis Society Digital Mammogram Database", Excerpta Medica, International Congress Series
1069, pp375-378.
"""


def push_to_hub(folder: Path, repo_id: str) -> str:
    """Upload a converted folder as a private Hub dataset repo; its URL."""
    from huggingface_hub import HfApi  # only --push-to needs it

    api = HfApi()
    url = api.create_repo(repo_id, repo_type="dataset", private=True, exist_ok=True)
    if not api.repo_info(repo_id, repo_type="dataset").private:
        raise ValueError(f"{repo_id} exists and is public; the MIAS licence forbids redistribution: "
                         "push to a private repo (or make this one private first)")
    api.upload_folder(folder_path=folder, repo_id=repo_id, repo_type="dataset",
                      commit_message="mini-MIAS in mammo's imagefolder layout (fetch_mias.py)")
    api.upload_file(path_or_fileobj=HUB_CARD.encode(), path_in_repo="README.md", repo_id=repo_id,
                    repo_type="dataset", commit_message="Dataset card: private copy, MIAS licence")
    return str(url)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "source", nargs="?",
        help="all-mias.tar.gz, a folder with Info.txt + mdbNNN.pgm, or a URL (default: --url)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output imagefolder (new/empty)")
    parser.add_argument("--size", type=int, default=512, help="output edge in pixels (512)")
    parser.add_argument("--url", default=DEFAULT_URL, help="archive URL used without SOURCE")
    parser.add_argument("--push-to", metavar="OWNER/NAME",
                        help="then upload the folder as a PRIVATE Hub dataset repo "
                             "(MAMMO_BASE_DATA of a Space)")
    args = parser.parse_args(argv)
    try:
        rows = convert(args.source, args.out, args.size, args.url)
    except (OSError, ValueError, tarfile.TarError) as error:
        print(f"fetch_mias: error: {error}", file=sys.stderr)
        return 1
    labels = Counter(row["label"] for row in rows)
    patients = len({row["patient_id"] for row in rows})
    counts = ", ".join(f"{label} {n}" for label, n in sorted(labels.items()))
    print(f"wrote {len(rows)} films ({counts}) of {patients} patients to {args.out}")
    if args.push_to:
        try:
            url = push_to_hub(args.out, args.push_to)
        except Exception as error:  # noqa: BLE001 - any Hub failure: one clear line, exit 1
            print(f"fetch_mias: error: pushing to {args.push_to} failed: {error}", file=sys.stderr)
            return 1
        print(f"pushed to the private dataset repo {url}; set MAMMO_BASE_DATA={args.push_to} on the Space")
    return 0


if __name__ == "__main__":
    sys.exit(main())
