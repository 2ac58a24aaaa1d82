"""Write the bad-input corpus tests/data/bad/ (synthetic, nothing downloaded) and its manifest.

    python scripts/make_bad_inputs.py [--out tests/data/bad]

Each file is an upload a visitor might send; MANIFEST.json says whether the app must accept it or
reject it with a message containing the given words. The tests send every file through the app.
The ``identified*.dcm`` files carry fake but distinctive patient tags (listed under ``identifiers``
in the manifest): tests/test_dicom_privacy.py checks that none of them is stored or logged.
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
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
JPEG2000_LOSSLESS = "1.2.840.10008.1.2.4.90"
JPEG_LS_LOSSLESS = "1.2.840.10008.1.2.4.80"


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


# Fake but distinctive identifiers: the privacy test greps the whole store and the log for them.
IDENTIFIERS = {
    "PatientName": "ZZYZX^QUINTESSA",
    "PatientID": "QX-7730-41",
    "PatientBirthDate": "19230417",
    "StudyDate": "19980611",
    "AccessionNumber": "ACC-QX-99173",
    "InstitutionName": "Quintessa Test Clinic",
}


def _j2k(pixels: np.ndarray) -> bytes:
    """A lossless JPEG 2000 codestream (Pillow's OpenJPEG) of 16-bit grey pixels."""
    return _save(Image.fromarray(pixels), "JPEG2000", no_jp2=True, irreversible=False)


def _dicom(
    pixels: np.ndarray | bytes | None,
    syntax: str = EXPLICIT_VR_LITTLE_ENDIAN,
    photometric: str = "MONOCHROME2",
    window: tuple[int, int] | None = None,
    tags: dict[str, str] | None = None,
    bits_stored: int = 12,
) -> bytes:
    """A 16-bit grey DICOM; ``pixels`` an array (native), bytes (one encapsulated frame) or None."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.encaps import encapsulate
    from pydicom.uid import UID, SecondaryCaptureImageStorage, generate_uid

    rows, cols = (96, 80) if not isinstance(pixels, np.ndarray) else pixels.shape
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    key = f"bad-{syntax}-{photometric}-{window}-{sorted((tags or {}).items())}-{pixels is None}"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[key])
    meta.TransferSyntaxUID = UID(syntax)
    ds = FileDataset("bad.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    ds.PatientName, ds.PatientID = "CORPUS^BAD", "BAD-0001"
    for name, value in (tags or {}).items():
        setattr(ds, name, value)
    ds.Modality, ds.Rows, ds.Columns, ds.SamplesPerPixel = "MG", rows, cols, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored = photometric, 16, bits_stored
    ds.HighBit, ds.PixelRepresentation = bits_stored - 1, 0
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if isinstance(pixels, bytes):
        ds.PixelData = encapsulate([pixels])
        ds["PixelData"].VR = "OB"
    elif pixels is not None:
        ds.PixelData = pixels.astype("<u2").tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _windowed_phantom(seed: int, invert: bool) -> np.ndarray:
    """12-bit pixels whose tissue lies in 1500..2500 (window 2000/1000) with out-of-window marks.

    Without the window a min-max scaling would squeeze the tissue into the middle grey levels,
    so a test can tell whether the window was applied. ``invert`` stores it for MONOCHROME1.
    """
    stored = 1500 + np.round(_grey(160, 128, seed) * 1000)
    stored[4:12, 4:20], stored[-12:-4, -20:-4] = 4095, 0  # a film label and a dark corner
    return (4095 - stored if invert else stored).astype(np.uint16)


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
    junk_j2k = b"\xff\x4f\xff\x51" + b"junk" * 50  # a codestream marker, then nothing decodable
    junk_jls = b"\xff\xd8\xff\xf7" + b"junk" * 50  # JPEG-LS SOI + SOF55, then nothing decodable
    return [
        ("empty.png", b"", "empty", "empty file"),
        ("text_renamed.png", b"hello, this is not an image\n" * 4, "not a recognised image",
         "text renamed .png"),
        ("truncated.png", valid_png[: len(valid_png) // 2], "damaged or truncated", "truncated PNG"),
        ("jpeg_named.png", _save(grey8, "JPEG"), "accepted", "JPEG named .png"),
        ("one_pixel.png", _png(Image.new("L", (1, 1))), "too small", "1 x 1"),
        ("blank.png", _png(Image.new("L", (80, 96))), "blank", "all black (one value)"),
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
        ("no_pixels.dcm", _dicom(None), "no pixel data", "DICOM without pixel data"),
        ("jpeg2000.dcm", _dicom(junk_j2k, JPEG2000_LOSSLESS), "could not be decoded",
         "DICOM, JPEG 2000 syntax, damaged"),
        ("jpeg_ls.dcm", _dicom(junk_jls, JPEG_LS_LOSSLESS), "could not be decoded",
         "DICOM, JPEG-LS syntax (no decoder installed)"),
        ("valid.dcm", _dicom(np.round(_grey() * 4095)), "accepted", "DICOM, uncompressed"),
        ("jpeg2000_valid.dcm", _dicom(_j2k(np.uint16(np.round(_grey(seed=8) * 65535))), JPEG2000_LOSSLESS,
                                      bits_stored=16), "accepted", "DICOM, JPEG 2000 lossless"),
        ("identified.dcm", _dicom(_windowed_phantom(9, invert=False), window=(2000, 1000), tags=IDENTIFIERS),
         "accepted", "DICOM MONOCHROME2, 12-bit, window, patient tags set"),
        ("identified_monochrome1.dcm", _dicom(_windowed_phantom(10, invert=True), photometric="MONOCHROME1",
                                              window=(2096, 1000), tags=IDENTIFIERS),
         "accepted", "DICOM MONOCHROME1, 12-bit, window, patient tags set"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data" / "bad")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    manifest = []
    for name, data, outcome, what in corpus():
        (args.out / name).write_bytes(data)
        entry = {"file": name, "what": what, "outcome": outcome}
        if IDENTIFIERS["PatientID"].encode() in data:  # the files that carry the fake patient
            entry["identifiers"] = IDENTIFIERS
        manifest.append(entry)
    (args.out / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(manifest)} files to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
