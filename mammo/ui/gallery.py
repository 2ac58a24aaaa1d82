"""The example films shipped in ``examples/`` (the Predict tab's gallery and the API page's example)."""

import os
from pathlib import Path

__all__ = ["EXAMPLES", "EXAMPLES_FOLDER", "PHANTOMS", "REAL_FILMS", "api_example_file", "film_caption"]

EXAMPLES_FOLDER = Path(__file__).resolve().parents[2] / "examples"

EXAMPLES = sorted(p for p in EXAMPLES_FOLDER.glob("*") if p.suffix.lower()
                  in {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".dcm"})
REAL_FILMS = [p for p in EXAMPLES if p.name.startswith("cbis_ddsm_")]  # examples/README.md
PHANTOMS = [p for p in EXAMPLES if p.name.startswith("phantom_")]


def api_example_file() -> str:
    """The image the API page's examples upload: a gallery film (on a Space, its Hub URL)."""
    name = next((p.name for p in [*REAL_FILMS, *EXAMPLES] if p.suffix == ".png"), "phantom_mass.png")
    space = os.environ.get("SPACE_ID")
    # by its full path: named from the working folder, a start from another folder failed (a walk)
    return (f"https://huggingface.co/spaces/{space}/resolve/main/examples/{name}" if space
            else str(EXAMPLES_FOLDER / name))


def film_caption(path: Path) -> str:
    """'cbis_ddsm_malignant_rcc.png' -> 'Malignant case, right CC' (the gallery's label names the
    data set: the caption's first word is what tells the films apart)."""
    _, _, case, view = path.stem.split("_")
    side = {"r": "right", "l": "left"}[view[0]]
    return f"{case.capitalize()} case, {side} {view[1:].upper()}"

