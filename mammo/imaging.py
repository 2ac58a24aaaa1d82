"""Read an image file (PNG, JPEG, TIFF, PGM/PNM, BMP, DICOM) into a validated grey array.

Only pixels leave this module: no file metadata (EXIF, PNG text, DICOM tags) is returned,
logged or written back out. Grey arrays are 2-D ``float32`` in ``[0, 1]``.

Scaling rules, so the same pixels always give the same array (and the same hash):

* 8-bit images are divided by 255; 16-bit ones by the full scale of their significant bits: those a
  PNG's ``sBIT`` chunk declares (:func:`encode_png` declares 16, so that the app reads its own PNGs,
  a dark case's too, as it wrote them), else the fewest of 12, 14 and 16 that hold its values (4095
  for a 12-bit detector's values stored in 16 bits). A 12-bit export divided by 65535 was read
  near-black, and the same film scored 7 % as a 12-bit PNG, 11 % as a raw 16-bit one and 18 % as its
  DICOM (an API probe): no later step normalises contrast. 16-bit PGM/PNM files are rescaled by
  Pillow from their declared ``maxval`` to the full 16-bit range;
* 32-bit integer images outside ``0..65535``, float images and DICOM are min-max scaled;
  an image with a single value becomes all zeros (:func:`refuse_blank` refuses it where images come in);
* colour images become luminance (ITU-R 601: 0.299 R + 0.587 G + 0.114 B); an alpha channel is
  dropped, not composited (mammograms carry no meaningful transparency). :func:`decode_image` also
  says how much of a colour image is in colour: a mammogram is grey, so a colour one is not a film
  (:func:`colour_doubt`);
* DICOM: modality LUT (rescale), then the VOI LUT or window, min-max, and MONOCHROME1 is inverted
  so that dense tissue is bright as in MONOCHROME2.

GIF is read too (single frame only) although it is not advertised in :data:`SUPPORTED`. Other
formats Pillow knows (EPS, PSD, ...) are refused, keeping the decoders exposed to uploads few.
"""

from __future__ import annotations

import hashlib
import math
import os
import warnings
from io import BytesIO
from typing import NamedTuple

import numpy as np
from PIL import Image, PngImagePlugin, UnidentifiedImageError

from .errors import MammoError

__all__ = [
    "COLOURED_SHARE_MAX",
    "DecodedImage",
    "ImageError",
    "ImageTooSmall",
    "MAX_PIXELS",
    "MIN_SIDE",
    "MAX_ASPECT",
    "SUPPORTED",
    "colour_doubt",
    "decode_image",
    "dicom_view",
    "refuse_blank",
    "read_image",
    "encode_png",
    "sha256_of_pixels",
    "is_dicom",
]

MAX_PIXELS: int = 80_000_000
MIN_SIDE: int = 32
MAX_ASPECT: float = 8.0
SUPPORTED = "DICOM, PNG (8 or 16-bit), JPEG, TIFF, PGM/PNM, BMP"

_PIL_FORMATS = ("PNG", "JPEG", "TIFF", "PPM", "BMP", "GIF")
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float64)
_SIXTEEN_BIT = 65535
# A pixel is in colour when (max - min) / max of its channels exceeds this; pixels darker than a tenth
# of full scale are not judged (their rounding noise alone can reach it).
_SATURATION = 0.15
_LIT = 0.1
_COLOUR_SAMPLES = 1_000_000  # colour is judged on about this many pixels (a regular subsample)
# Above this share of coloured pixels an image is a colour picture, not a film. Measured here: grey
# films (the 258 mini-MIAS and the 8 CBIS-DDSM films) saved as RGB JPEG, quality 30-95: 0; five colour
# photographs in the installed packages (a portrait, a flower, a temple, a tower, a cheetah), also
# darkened to 15% brightness: 0.32-1.0. Coloured marks drawn on a film (a ring, a caption) stay below.
COLOURED_SHARE_MAX = 0.10


class ImageError(MammoError, ValueError):
    """A file that is not a usable image; the message says why, in plain words for a clinician."""


class ImageTooSmall(ImageError):
    """An image with a side under the smallest a model accepts (its ``min_side``)."""


def is_dicom(data: bytes) -> bool:
    """True when ``data`` has the DICOM part-10 signature ``DICM`` at offset 128."""
    return data[128:132] == b"DICM"


class DecodedImage(NamedTuple):
    """An image file's grey pixels and the share of its lit pixels that are in colour (0 when grey)."""

    grey: np.ndarray
    coloured: float


def decode_image(
    source: str | os.PathLike | bytes, *, max_bytes: int | None = None, min_side: int = MIN_SIDE
) -> DecodedImage:
    """Decode a path or raw bytes to a 2-D float32 array in [0, 1] (grey) and say how much of it was
    in colour. Raises ImageError.

    ``min_side`` is lowered only for small benchmark images (BreastMNIST is 28 x 28).
    """
    data = _read_bytes(source, max_bytes)
    if not data:
        raise ImageError("The file is empty.")
    grey, coloured = _decode_dicom(data, min_side) if is_dicom(data) else _decode_pil(data, min_side)
    grey = np.asarray(grey, dtype=np.float32)
    grey = np.clip(grey, 0.0, 1.0, out=grey if grey.flags.writeable and grey.flags.c_contiguous else None)
    return DecodedImage(grey, coloured)


def read_image(
    source: str | os.PathLike | bytes, *, max_bytes: int | None = None, min_side: int = MIN_SIDE
) -> np.ndarray:
    """:func:`decode_image`'s grey pixels alone."""
    return decode_image(source, max_bytes=max_bytes, min_side=min_side).grey


def dicom_view(source: str | os.PathLike | bytes) -> dict[str, str]:
    """The breast side and view a DICOM file's header states, spelt as the case metadata spells them
    (``{"laterality": "L", "view": "CC"}``; a key only where the header gives a value it knows); ``{}``
    for any other file, or a header that cannot be read. Only a help to fill in a form: it never fails."""
    from pydicom import dcmread

    try:
        with BytesIO(bytes(source)) if isinstance(source, bytes | bytearray | memoryview) else \
                open(source, "rb") as handle:
            if not is_dicom(handle.read(132)):
                return {}
            handle.seek(0)
            header = dcmread(handle, stop_before_pixels=True)
        side = str(header.get("ImageLaterality") or header.get("Laterality") or "").strip().upper()
        view = str(header.get("ViewPosition") or "").strip().upper()
    except Exception:  # noqa: BLE001 - a damaged header is said when the image is read, not here
        return {}
    return {**({"laterality": side} if side in ("L", "R") else {}),
            **({"view": view} if view in ("CC", "MLO") else {})}


def refuse_blank(grey: np.ndarray) -> None:
    """An ImageError for an image whose every pixel has one value (all black, all white): no film. For
    images coming in (Predict, a submission), not for those already stored or trained on."""
    if grey.size and float(grey.min()) == float(grey.max()):
        raise ImageError("The image is blank: every pixel has the same value, so there is nothing to read.")


def colour_doubt(coloured: float) -> str | None:
    """Why an image with this share of coloured pixels is no mammogram, or None when it may be one."""
    if coloured <= COLOURED_SHARE_MAX:
        return None
    return (f"it is a colour picture, {coloured:.0%} of its non-dark pixels in colour, while a mammogram is "
            "grey; a grey film photographed or scanned with a colour cast counts too: convert it to "
            "greyscale")


def encode_png(grey: np.ndarray) -> bytes:
    """2-D float array in [0,1] -> 16-bit greyscale PNG bytes with no metadata chunks; its ``sBIT``
    chunk declares all 16 bits significant (read back at that scale, however dark)."""
    buf = BytesIO()
    significant = PngImagePlugin.PngInfo()
    significant.add(b"sBIT", bytes([16]))
    Image.fromarray(_quantise(grey)).save(buf, format="PNG", pnginfo=significant)
    return buf.getvalue()


_HASH_ROWS = 256


def sha256_of_pixels(grey: np.ndarray) -> str:
    """Hex SHA-256 of the shape and the 16-bit quantised pixels, for duplicate detection."""
    arr = np.asarray(grey)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D grey array, got shape {arr.shape}")
    digest = hashlib.sha256(f"{arr.shape[0]}x{arr.shape[1]}:".encode())
    for top in range(0, arr.shape[0], _HASH_ROWS):  # in bands: no full-size copy of a 30 MP film
        band = _quantise(arr[top : top + _HASH_ROWS]).astype("<u2", copy=False)
        digest.update(memoryview(np.ascontiguousarray(band)).cast("B"))
    return digest.hexdigest()


def _quantise(grey: np.ndarray) -> np.ndarray:
    """Round a 2-D [0, 1] float array to uint16 (0..65535); ValueError when it is not one."""
    arr = np.asarray(grey)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D grey array, got shape {arr.shape}")
    if arr.size:
        lo, hi = arr.min(), arr.max()  # NaN propagates into both; inf fails the range
        if np.isnan(lo) or np.isnan(hi) or np.isinf(lo) or np.isinf(hi):
            raise ValueError("grey array contains NaN or infinite values")
        if lo < 0.0 or hi > 1.0:
            raise ValueError(f"grey array values must lie in [0, 1], got {lo}..{hi}")
    scaled = arr.astype(np.float64)  # the one copy; rounded in float64 as always (same hashes)
    scaled *= _SIXTEEN_BIT
    return np.rint(scaled, out=scaled).astype(np.uint16)


def _mb(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


def _read_bytes(source: str | os.PathLike | bytes, max_bytes: int | None) -> bytes:
    """The input's bytes, refusing more than ``max_bytes`` before reading a file fully."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if max_bytes is not None and len(data) > max_bytes:
            raise ImageError(
                f"The file is {_mb(len(data))}, larger than the {_mb(max_bytes)} upload limit."
            )
        return data
    try:
        with open(source, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise ImageError(
                    f"The file is {_mb(size)}, larger than the {_mb(max_bytes)} upload limit."
                )
            data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
    except OSError as exc:
        raise ImageError(f"Could not read the file: {exc.strerror or exc}.") from exc
    if max_bytes is not None and len(data) > max_bytes:  # grew while being read
        raise ImageError(f"The file is larger than the {_mb(max_bytes)} upload limit.")
    return data


def _check_geometry(width: int, height: int, min_side: int) -> None:
    """Refuse decompression bombs, slivers and thumbnails from the header's size alone."""
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"The image is {width} x {height} pixels, larger than the "
            f"{MAX_PIXELS // 1_000_000}-megapixel limit."
        )
    short, long = sorted((width, height))
    if short == 0:
        raise ImageError(f"The image is {width} x {height} pixels: it has no pixels.")
    if long / short > MAX_ASPECT:
        raise ImageError(
            f"The image is {width} x {height} pixels: its aspect ratio {long / short:.0f}:1 "
            f"exceeds {MAX_ASPECT:g}:1, too elongated to be a mammogram."
        )
    if short < min_side:
        raise ImageTooSmall(
            f"The image is {width} x {height} pixels, too small to be a mammogram "
            f"(each side must be at least {min_side} pixels)."
        )


def _check_frames(n_frames: int) -> None:
    if n_frames > 1:
        raise ImageError(f"The file has {n_frames} frames; upload a single image.")


def _minmax(arr: np.ndarray, invert: bool = False) -> np.ndarray:
    """Scale finite values to [0, 1] (``invert``: then 1 - that) as float32; a constant image becomes
    zeros. NaN/inf -> ImageError. Computed in float64 a band of rows at a time: the values are those
    of scaling the whole image in float64, without a float64 copy of a 12 MP film (about 100 MB)."""
    arr = np.asarray(arr)
    if arr.dtype.kind not in "uib" and not np.isfinite(arr).all():
        raise ImageError("The image contains invalid pixel values (NaN or infinity).")
    lo, hi = float(arr.min()), float(arr.max())
    out = np.zeros(arr.shape, dtype=np.float32)
    if hi <= lo:
        return out
    for top in range(0, arr.shape[0], _HASH_ROWS):
        band = arr[top : top + _HASH_ROWS].astype(np.float64)
        band -= lo
        band /= hi - lo
        out[top : top + _HASH_ROWS] = 1.0 - band if invert else band
    return out


_STORED_RANGES = (4095, 16383, _SIXTEEN_BIT)  # a 12-bit, 14-bit and 16-bit detector's values


def _stored_range(top: int, significant_bits: int | None = None) -> int:
    """The full scale of a 16-bit image whose largest value is ``top``: that of its declared
    ``significant_bits`` where they hold it, else of the fewest bits of :data:`_STORED_RANGES` that do
    (see the module docstring)."""
    if significant_bits and 8 <= significant_bits <= 16 and top <= (declared := 2**significant_bits - 1):
        return declared
    return next(full for full in _STORED_RANGES if top <= full)


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(np.float64) @ _LUMA


def _coloured_share(rgb: np.ndarray, full_scale: float) -> float:
    """The share of ``rgb``'s lit pixels (brighter than a tenth of ``full_scale``) that are in colour,
    judged on a regular subsample of about a million pixels."""
    step = max(1, math.ceil(math.sqrt(rgb.shape[0] * rgb.shape[1] / _COLOUR_SAMPLES)))
    sample = rgb[::step, ::step, :3].astype(np.float32)
    brightest, darkest = sample.max(axis=-1), sample.min(axis=-1)
    lit = brightest > _LIT * full_scale
    if not lit.any():
        return 0.0
    return float(np.mean(brightest[lit] - darkest[lit] > _SATURATION * brightest[lit]))


def _decode_pil(data: bytes, min_side: int) -> tuple[np.ndarray, float]:
    """Decode a non-DICOM file with Pillow, checking its header before the pixels."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(data), formats=_PIL_FORMATS) as im:
                _check_geometry(*im.size, min_side)
                _check_frames(getattr(im, "n_frames", 1))
                im.load()
                return _pil_to_grey(im, _png_significant_bits(data))
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageError(
            f"The image is larger than the {MAX_PIXELS // 1_000_000}-megapixel limit "
            "(possible decompression bomb)."
        ) from exc
    except UnidentifiedImageError as exc:
        raise ImageError(f"The file is not a recognised image. Supported: {SUPPORTED}.") from exc
    except (OSError, SyntaxError, ValueError, EOFError, IndexError) as exc:
        raise ImageError(
            f"The image data could not be decoded; the file is damaged or truncated ({exc})."
        ) from exc


def _png_significant_bits(data: bytes) -> int | None:
    """The grey significant bits a PNG's ``sBIT`` chunk declares (before its pixels); None for another
    file, or a PNG without one."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    pos = 8
    while pos + 9 <= len(data):
        length, kind = int.from_bytes(data[pos : pos + 4], "big"), data[pos + 4 : pos + 8]
        if kind == b"sBIT":
            return data[pos + 8] if length >= 1 else None
        if kind in (b"IDAT", b"IEND"):
            return None
        pos += 12 + length
    return None


def _pil_to_grey(im: Image.Image, significant_bits: int | None = None) -> tuple[np.ndarray, float]:
    """A loaded Pillow image in any mode -> float grey in [0, 1] (see the module docstring) and the
    share of its lit pixels in colour (0 for a grey mode)."""
    mode = im.mode
    if mode == "1":
        return np.asarray(im, dtype=np.float64), 0.0
    if mode in ("L", "LA"):
        return np.asarray(im.getchannel(0), dtype=np.float64) / 255.0, 0.0
    if mode.startswith("I;16") or mode == "I":
        arr = np.asarray(im)
        if arr.size and arr.min() >= 0 and arr.max() <= _SIXTEEN_BIT:
            return arr.astype(np.float64) / _stored_range(int(arr.max()), significant_bits), 0.0
        return _minmax(arr), 0.0
    if mode == "F":
        return _minmax(np.asarray(im)), 0.0
    rgb = np.asarray(im.convert("RGB"))
    return _luma(rgb) / 255.0, _coloured_share(rgb, 255.0)


def _decode_dicom(data: bytes, min_side: int) -> tuple[np.ndarray, float]:
    """Decode a DICOM file's single frame. Errors never quote tag values (they may identify)."""
    from pydicom import dcmread
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = dcmread(BytesIO(data), force=False)
    except Exception:
        raise ImageError("The DICOM file is damaged and could not be read.") from None
    if any("End of file reached" in str(w.message) for w in caught):
        raise ImageError("The DICOM file is truncated: its data end early (damaged or incomplete upload).")
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageError("DICOM file has no pixel data.")
    try:
        rows, cols = int(ds.Rows), int(ds.Columns)
        frames = int(ds.get("NumberOfFrames") or 1)
    except (AttributeError, TypeError, ValueError):
        raise ImageError("The DICOM file does not state its image size.") from None
    _check_geometry(cols, rows, min_side)
    _check_frames(frames)
    syntax = ds.file_meta.get("TransferSyntaxUID")
    try:
        arr = ds.pixel_array
    except Exception:
        name = f"{syntax.name} ({syntax})" if syntax else "an unstated transfer syntax"
        if syntax and syntax.is_compressed:
            why = "no decoder for it is installed, or the data are damaged"
        else:
            why = "the data are damaged or incomplete"
        raise ImageError(
            f"The DICOM pixel data stored as {name} could not be decoded: {why}."
        ) from None
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if not photometric.startswith("MONOCHROME"):  # colour: pydicom (>= 3) gives RGB, also for YBR data
        if photometric == "PALETTE COLOR":  # indices into the file's colour tables
            try:
                arr = apply_color_lut(arr, ds)
            except (ValueError, TypeError, KeyError, AttributeError, IndexError):
                raise ImageError("The DICOM file's colour palette is missing or damaged.") from None
            full_scale = float(np.iinfo(arr.dtype).max)
        elif arr.ndim != 3:
            raise ImageError(f"The DICOM image has an unexpected shape {arr.shape} for its colour samples.")
        else:
            bits = int(ds.get("BitsStored") or 0)
            full_scale = float(2**bits - 1) if arr.dtype.kind in "ui" and bits else float(arr.max())
        return _minmax(_luma(arr)), _coloured_share(arr, full_scale)
    if arr.ndim != 2:
        raise ImageError(f"The DICOM image has an unexpected shape {arr.shape}.")
    try:
        values = apply_voi_lut(apply_modality_lut(arr, ds), ds)
    except (ValueError, TypeError, ArithmeticError, AttributeError, KeyError):  # e.g. a window width of 0
        raise ImageError("The DICOM file's intensity settings (rescale slope/intercept or window "
                         "centre/width) are invalid, so its grey levels cannot be read.") from None
    return _minmax(values, invert=photometric == "MONOCHROME1"), 0.0
