"""Write the synthetic example images in examples/ (phantoms for trying the UI; no real patient).

    python scripts/make_examples.py [--out examples]

Deterministic: the same files every run. Each phantom is a breast-shaped bright region against one
side with smooth random texture; one has a round "mass", one clustered bright "calcifications",
one is a 16-bit PNG, and one is a DICOM whose patient tags hold obviously fake values.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

__all__ = ["phantom", "add_mass", "add_calcifications", "add_film_label", "write_dicom", "main"]

HEIGHT, WIDTH = 512, 416


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
    print(f"wrote 4 synthetic phantoms to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
