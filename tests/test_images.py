"""prepare_image: images as they really come (EXIF orientation, 16-bit, transparency, huge)."""

from __future__ import annotations

import struct
import time
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest

from scratchdl.files import images
from scratchdl.files.images import ImageError, prepare_image

Image = pytest.importorskip("PIL.Image")

EXIF_ORIENTATION = 0x0112  # the EXIF tag that says how to turn the stored pixels upright
SMALL_MEMORY = 100_000_000  # bytes: reading or refusing a huge image stays well below this


def seven(ink: int = 0, paper: int = 255) -> np.ndarray:
    """A "7" on paper, 96 x 64 pixels: asymmetric, so every rotation of it differs."""
    a = np.full((96, 64), paper, dtype=np.uint8)
    a[16:26, 12:52] = ink  # the bar
    for r in range(26, 84):  # the stroke down to the left
        c = 52 - (r - 26) * 30 // 58
        a[r, c - 5 : c + 5] = ink
    return a


def test_prepare_image_centres_the_digit_as_mnist_did(tmp_path):
    paper = np.full((90, 120), 255, dtype=np.uint8)
    paper[10:50, 15:35] = 0  # a dark bar, 40 x 20 pixels, off-centre on light paper
    Image.fromarray(paper).save(tmp_path / "bar.png")
    x = prepare_image(tmp_path / "bar.png")
    assert x.shape == (1, 1, 28, 28) and x.dtype == np.float32
    rows, cols = np.flatnonzero(x[0, 0].any(axis=1)), np.flatnonzero(x[0, 0].any(axis=0))
    assert (rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) == (20, 10)  # longer side: 20
    yy, xx = np.mgrid[0:28, 0:28]
    centre = [(yy * x[0, 0]).sum() / x.sum(), (xx * x[0, 0]).sum() / x.sum()]
    np.testing.assert_allclose(centre, [13.5, 13.5], atol=0.5)
    assert x[0, 0, 0, 0] == 0 and x.max() == pytest.approx(1, abs=0.01)  # light ink on black
    with pytest.raises(ValueError, match="no such image"):  # ImageError is a ValueError
        prepare_image(tmp_path / "none.png")
    assert issubclass(ImageError, ValueError)


# -- EXIF orientation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fmt, orientation, stored",
    [
        ("JPEG", 6, Image.Transpose.ROTATE_90),  # 6: shown after turning 90 degrees clockwise
        ("JPEG", 8, Image.Transpose.ROTATE_270),  # 8: shown after turning 90 degrees anticlockwise
        ("JPEG", 3, Image.Transpose.ROTATE_180),
        ("PNG", 6, Image.Transpose.ROTATE_90),
    ],
)
def test_the_exif_orientation_turns_a_photo_upright(tmp_path, fmt, orientation, stored):
    upright = Image.fromarray(seven())
    ext = fmt.lower()
    upright.save(tmp_path / f"upright.{ext}", fmt, quality=95)
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    upright.transpose(stored).save(tmp_path / f"turned.{ext}", fmt, quality=95, exif=exif)
    upright.transpose(stored).save(tmp_path / f"sideways.{ext}", fmt, quality=95)  # no EXIF
    want = prepare_image(tmp_path / f"upright.{ext}")
    got = prepare_image(tmp_path / f"turned.{ext}")
    tol = 0.1 if fmt == "JPEG" else 1e-6  # JPEG's blocks fall differently on a turned image
    np.testing.assert_allclose(got, want, atol=tol)
    sideways = prepare_image(tmp_path / f"sideways.{ext}")
    assert np.abs(sideways - want).max() > 0.5  # the test can tell a turned digit apart


# -- 16-bit grayscale -------------------------------------------------------------------------


@pytest.mark.parametrize("fmt, dtype", [("png", np.uint16), ("tiff", np.uint16)])
def test_16_bit_gray_ink_on_light_paper_is_read_not_clipped_to_white(tmp_path, fmt, dtype):
    eight = seven(ink=80, paper=235)  # gray ink on light paper
    Image.fromarray(eight).save(tmp_path / "eight.png")
    wide = Image.fromarray(eight.astype(dtype) * 257)  # the same levels in 16 bits
    wide.save(tmp_path / f"wide.{fmt}")
    with Image.open(tmp_path / f"wide.{fmt}") as im:
        assert im.mode in ("I;16", "I")  # what convert("L") clips
    got = prepare_image(tmp_path / f"wide.{fmt}")  # used to be "blank": all levels > 255
    np.testing.assert_allclose(got, prepare_image(tmp_path / "eight.png"), atol=1e-6)


def _unsigned_tiff(path, levels: np.ndarray) -> None:
    """Save uint32 ``levels`` as an unsigned 32-bit TIFF (Pillow writes int32 as signed)."""
    Image.fromarray(levels.view(np.int32)).save(path)
    raw = bytearray(path.read_bytes())
    at = raw.find(struct.pack("<HHIH", 339, 3, 1, 2))  # SampleFormat, SHORT, 1 value: 2 (int)
    assert at > 0
    raw[at + 8 : at + 10] = struct.pack("<H", 1)  # 1: unsigned
    path.write_bytes(raw)


@pytest.mark.parametrize("unsigned, scale", [(False, 1 << 23), (True, 1 << 24), (False, 1)])
def test_32_bit_levels_are_scaled_by_their_brightest_not_as_16_bit(tmp_path, unsigned, scale):
    eight = seven(ink=51, paper=255)  # 0.2 and 1 of the brightest level
    Image.fromarray(eight).save(tmp_path / "eight.png")
    levels = eight.astype(np.uint32) * scale  # up to 255 * 2**24, beyond int32 when unsigned
    if unsigned:
        _unsigned_tiff(tmp_path / "wide.tiff", levels)
    else:
        Image.fromarray(levels.astype(np.int32)).save(tmp_path / "wide.tiff")
    with Image.open(tmp_path / "wide.tiff") as im:
        assert im.mode == "I" and im.tag_v2[258] == (32,)
    got = prepare_image(tmp_path / "wide.tiff")  # was "blank": every level clipped to white
    np.testing.assert_allclose(got, prepare_image(tmp_path / "eight.png"), atol=1e-6)


def test_negative_integer_levels_are_refused(tmp_path):
    levels = seven().astype(np.int32) - 100
    Image.fromarray(levels).save(tmp_path / "signed.tiff")
    with pytest.raises(ImageError, match=r"signed.tiff: .*negative gray levels \(down to -100\)"):
        prepare_image(tmp_path / "signed.tiff")


@pytest.mark.parametrize("white", [1.0, 255.0, 3e4])
def test_float_levels_are_read_as_they_are_or_by_their_brightest(tmp_path, white):
    eight = seven(ink=51, paper=255)
    Image.fromarray(eight).save(tmp_path / "eight.png")
    Image.fromarray((eight / np.float32(255) * np.float32(white)).astype(np.float32)).save(
        tmp_path / "float.tiff"
    )
    with Image.open(tmp_path / "float.tiff") as im:
        assert im.mode == "F"
    got = prepare_image(tmp_path / "float.tiff")  # levels 0..1 were called "blank"
    np.testing.assert_allclose(got, prepare_image(tmp_path / "eight.png"), atol=1e-6)


@pytest.mark.parametrize(
    "value, words",
    [(np.inf, ["NaN or infinite", "inf"]), (np.nan, ["NaN or infinite", "nan"]), (-0.5, ["-0.5"])],
)
def test_float_levels_that_are_not_gray_levels_are_refused(tmp_path, value, words):
    levels = (seven(ink=51) / 255).astype(np.float32)
    levels[0, 0] = value  # one pixel: was predicted "0 (p=0.999)" for inf
    Image.fromarray(levels).save(tmp_path / "bad.tiff")
    with pytest.raises(ImageError) as info:
        prepare_image(tmp_path / "bad.tiff")
    for word in ["bad.tiff", *words]:
        assert word in str(info.value), str(info.value)


# -- several frames ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["anim.gif", "pages.tiff", "anim.png", "anim.webp"])
def test_an_image_of_several_frames_is_refused(tmp_path, name):
    first, second = Image.fromarray(seven()), Image.fromarray(seven()[::-1])
    first.save(tmp_path / name, save_all=True, append_images=[second])
    with pytest.raises(ImageError, match=r"has 2 (frames|pages), not one"):
        prepare_image(tmp_path / name)
    first.save(tmp_path / f"one-{name}")  # one frame of the same format reads
    assert prepare_image(tmp_path / f"one-{name}").max() > 0.9


def test_a_phones_mpo_photo_is_read_as_its_first_picture(tmp_path):
    first, preview = Image.fromarray(seven()).convert("RGB"), Image.new("RGB", (32, 48), "gray")
    first.save(tmp_path / "photo.mpo", save_all=True, append_images=[preview])
    first.save(tmp_path / "photo.jpg")
    with Image.open(tmp_path / "photo.mpo") as im:
        assert im.format == "MPO" and im.n_frames == 2
    got, want = prepare_image(tmp_path / "photo.mpo"), prepare_image(tmp_path / "photo.jpg")
    np.testing.assert_allclose(got, want, atol=0.02)


# -- transparency -----------------------------------------------------------------------------


def _on_transparent_black(a: np.ndarray, mode: str):
    """The dark ink of ``a`` (0 ink, 255 paper) as opaque black on fully transparent black
    pixels, as drawing canvases export it."""
    alpha = 255 - a  # ink opaque, paper transparent
    black = np.zeros_like(a)
    if mode == "RGBA":
        return Image.fromarray(np.dstack([black, black, black, alpha]), "RGBA")
    if mode == "LA":
        return Image.fromarray(np.dstack([black, alpha]), "LA")
    if mode == "P":  # index 0: transparent black, index 1: black
        p = Image.fromarray((a == 0).astype(np.uint8), "L").convert("P")
        p.putpalette([0, 0, 0] * 2)
        p.info["transparency"] = 0
        return p
    raise AssertionError(mode)


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P"])
def test_a_dark_digit_on_a_transparent_canvas_is_read_on_white(tmp_path, mode):
    a = seven()
    Image.fromarray(a).save(tmp_path / "paper.png")
    im = _on_transparent_black(a, mode)
    im.save(tmp_path / "canvas.png", **({"transparency": 0} if mode == "P" else {}))
    with Image.open(tmp_path / "canvas.png") as saved:  # still transparent once written
        assert saved.mode in ("RGBA", "LA") or "transparency" in saved.info
    np.testing.assert_array_equal(
        prepare_image(tmp_path / "canvas.png"), prepare_image(tmp_path / "paper.png")
    )


def test_soft_edged_ink_on_transparent_black_keeps_its_soft_edge(tmp_path):
    a = seven()
    alpha = (255 - a).astype(np.float32)
    alpha[1:-1, 1:-1] = (alpha[:-2, 1:-1] + alpha[2:, 1:-1] + alpha[1:-1, 1:-1]) / 3  # blur
    alpha = alpha.astype(np.uint8)
    black = np.zeros_like(a)
    Image.fromarray(np.dstack([black, black, black, alpha]), "RGBA").save(tmp_path / "soft.png")
    Image.fromarray(255 - alpha).save(tmp_path / "paper.png")  # the same, on white paper
    np.testing.assert_allclose(
        prepare_image(tmp_path / "soft.png"), prepare_image(tmp_path / "paper.png"), atol=0.01
    )


@pytest.mark.parametrize("hidden", [255, 0], ids=["transparent_white", "transparent_black"])
def test_a_light_digit_on_a_transparent_canvas_is_read_on_black(tmp_path, hidden):
    a = seven()
    light = np.where(a == 0, 255, hidden).astype(np.uint8)  # white ink; the rest transparent
    rgba = np.dstack([light, light, light, 255 - a])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "canvas.png")
    Image.fromarray(a).save(tmp_path / "paper.png")
    np.testing.assert_array_equal(
        prepare_image(tmp_path / "canvas.png"), prepare_image(tmp_path / "paper.png")
    )


# -- size -------------------------------------------------------------------------------------


def _write_black_png(path, width: int, height: int, rows: int | None = None) -> None:
    """A 1-bit grayscale PNG of any size, a few KB on disk; ``rows`` of its pixel rows (all
    of them by default) are written, so its header may promise more than it holds."""
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then all-black pixels
    z = zlib.compressobj(9)
    data = b"".join(z.compress(row) for _ in range(height if rows is None else rows))
    data += z.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)  # 1 bit, grayscale
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
    path.write_bytes(png + chunk(b"IEND", b""))


def _measured(fn, *args):
    """fn(*args) with warnings as errors; returns (result or exception, seconds, peak bytes)."""
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            try:
                result = fn(*args)
            except ImageError as e:
                result = e
        return result, time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("width, height", [(12000, 12000), (8000, 6000), (70000, 70000)])
def test_a_huge_image_is_refused_from_its_header(tmp_path, width, height):
    path = tmp_path / "huge.png"
    # the largest holds one row of pixels: Pillow refuses it itself, from the header
    _write_black_png(path, width, height, rows=None if width * height < 1e9 else 1)
    assert path.stat().st_size < 200_000
    assert width * height > images.MAX_PIXELS
    error, seconds, peak = _measured(prepare_image, path)
    assert isinstance(error, ImageError), error
    message = str(error)
    assert "\n" not in message and str(path) in message and f"{images.MAX_PIXELS:,}" in message
    assert f"{width * height:,} pixels" in message, message
    assert seconds < 1 and peak < SMALL_MEMORY


def test_a_large_jpeg_photo_decodes_small(tmp_path):
    from PIL import ImageDraw

    im = Image.new("L", (8000, 6000), 255)  # 48 MP, above MAX_PIXELS: a large phone photo
    ImageDraw.Draw(im).rectangle((3000, 1000, 3600, 5000), fill=0)  # a "1", 4000 pixels tall
    im.save(tmp_path / "photo.jpg", quality=80)
    im.save(tmp_path / "photo.png")
    assert 8000 * 6000 > images.MAX_PIXELS
    x, _, peak = _measured(prepare_image, tmp_path / "photo.jpg")
    assert not isinstance(x, Exception), x
    assert peak < SMALL_MEMORY
    rows, cols = (
        np.flatnonzero(x[0, 0].max(axis=1) > 0.5),
        np.flatnonzero(x[0, 0].max(axis=0) > 0.5),
    )
    assert rows[-1] - rows[0] + 1 == 20 and 2 <= cols[-1] - cols[0] + 1 <= 4  # a tall bar
    with pytest.raises(ImageError, match="8000x6000"):  # a PNG cannot be decoded small
        prepare_image(tmp_path / "photo.png")


def test_only_the_formats_of_digit_images_are_opened(tmp_path):
    # an EPS file would go to Ghostscript, an ICO or PCX reader is attack surface for nothing
    eps = tmp_path / "digit.eps"
    eps.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\nshowpage\n")
    with pytest.raises(ImageError, match="cannot read"):
        prepare_image(eps)
    from PIL import Image

    ico = tmp_path / "digit.ico"
    Image.new("L", (32, 32), 255).save(ico)
    with pytest.raises(ImageError, match="cannot read"):
        prepare_image(ico)
