"""Write the bad-input corpus tests/data/bad/ (synthetic, nothing downloaded) and its manifest.

    python scripts/make_bad_inputs.py [--out tests/data/bad]

Each file is an upload a visitor might send; MANIFEST.json says whether the app must accept it or
reject it with a message containing the given words. The tests send every file through the app.
"""

from __future__ import annotations

import argparse
import io
import json
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def _grey(height: int = 96, width: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    wave = 0.3 * np.sin(xx / 7 + seed) * np.cos(yy / 9)
    return np.clip(0.5 + wave + rng.normal(0, 0.02, (height, width)), 0, 1)


def _image(seed: int) -> Image.Image:
    """An 8-bit grey test image; each seed gives different pixels (no duplicate submissions)."""
    return Image.fromarray(np.uint8(_grey(seed=seed) * 255))


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _save(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny valid PNG whose IHDR is patched to claim another size (CRC recomputed)."""
    data = bytearray(_png(Image.new("L", (64, 64))))
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr) & 0xFFFFFFFF)
    return bytes(data)


def _dicom(pixels: bool, syntax: str = "explicit") -> bytes:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import (
        ExplicitVRLittleEndian,
        JPEG2000Lossless,
        SecondaryCaptureImageStorage,
        generate_uid,
    )

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[f"bad-{pixels}-{syntax}"])
    meta.TransferSyntaxUID = JPEG2000Lossless if syntax == "jpeg2000" else ExplicitVRLittleEndian
    ds = FileDataset("bad.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "CORPUS^BAD", "BAD-0001"
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "MG", 96, 80, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = "MONOCHROME2", 16, 12
    ds.HighBit, ds.PixelRepresentation = 11, 0
    if pixels and syntax == "jpeg2000":
        from pydicom.encaps import encapsulate

        ds.PixelData = encapsulate([b"\xff\x4f\xff\x51" + b"junk" * 50])  # undecodable codestream
    elif pixels:
        ds.PixelData = np.round(_grey() * 4095).astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def corpus() -> list[tuple[str, bytes, str, str]]:
    """(file name, bytes, outcome 'accepted' or words of the rejection message, what it is)."""
    grey8 = _image(0)
    rgba = _image(1).convert("RGBA")
    frames = [_image(2), _image(3)]
    gif, tiff = io.BytesIO(), io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    frames[0].save(tiff, format="TIFF", save_all=True, append_images=frames[1:])
    nan = _grey(seed=4).astype(np.float32)
    nan[10, 10], nan[20, 20] = np.nan, np.inf
    valid_png = _png(grey8)
    return [
        ("empty.png", b"", "empty", "empty file"),
        ("text_renamed.png", b"hello, this is not an image\n" * 4, "not a recognised image",
         "text renamed .png"),
        ("truncated.png", valid_png[: len(valid_png) // 2], "damaged or truncated", "truncated PNG"),
        ("jpeg_named.png", _save(grey8, "JPEG"), "accepted", "JPEG named .png"),
        ("one_pixel.png", _png(Image.new("L", (1, 1))), "too small", "1 x 1"),
        ("sliver_10x100000.png", _png_claiming(10, 100_000), "aspect ratio", "10 x 100000 (header)"),
        ("bomb_50000x50000.png", _png_claiming(50_000, 50_000), "megapixel limit", "decompression bomb"),
        ("grey_16bit.png", _png(Image.fromarray(np.uint16(_grey(seed=5) * 65535))), "accepted", "16-bit PNG"),
        ("rgba.png", _png(rgba), "accepted", "RGBA PNG"),
        ("cmyk.jpg", _save(_image(7).convert("CMYK"), "JPEG"), "accepted", "CMYK JPEG"),
        ("palette.png", _png(_image(6).convert("P")), "accepted", "palette PNG"),
        ("animated.gif", gif.getvalue(), "frames", "animated GIF"),
        ("multipage.tiff", tiff.getvalue(), "frames", "multi-page TIFF"),
        ("float_nan.tiff", _save(Image.fromarray(nan, mode="F"), "TIFF"), "NaN or infinity",
         "float TIFF with NaN/inf"),
        ("no_pixels.dcm", _dicom(pixels=False), "no pixel data", "DICOM without pixel data"),
        ("jpeg2000.dcm", _dicom(pixels=True, syntax="jpeg2000"), "could not be decoded",
         "DICOM, JPEG 2000 syntax, damaged"),
        ("valid.dcm", _dicom(pixels=True), "accepted", "DICOM, uncompressed"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "bad")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for name, data, outcome, what in corpus():
        (args.out / name).write_bytes(data)
        manifest.append({"file": name, "what": what, "outcome": outcome})
    (args.out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(manifest)} files to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
