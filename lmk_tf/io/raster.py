"""Ordinary pictures (PNG, JPEG, BMP, TIFF; Pillow) <-> 2D Image.

These formats carry no trustworthy physical spacing (the dpi fields say
72 or 96 for X-rays exported from any viewer), so spacing comes from the
caller; without it the reader uses 1.0 mm and warns, naming the file.
Colour pictures become grey luminance (greyscale X-rays saved as RGB, like
the ISBI 2015 jpgs, come back as their grey values); 16-bit greyscale keeps
16 bits. Origin is 0 and direction ITK's identity (columns along x, rows along y).
"""

from __future__ import annotations

import os

import numpy as np

from lmk_tf.errors import ConfigError, ImageReadError
from lmk_tf.image import Image
from lmk_tf.io.common import check_file, check_image_size, resolve_spacing

RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

_MAGIC = {
    b"\x89PNG\r\n\x1a\n": "PNG",
    b"\xff\xd8\xff": "JPEG",
    b"BM": "BMP",
    b"II*\x00": "TIFF",
    b"MM\x00*": "TIFF",
}

# Modes whose pixels numpy reads directly as one grey channel.
_GREY_MODES = {"L", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"}


def raster_magic(head: bytes) -> str | None:
    """'PNG', 'JPEG', 'BMP' or 'TIFF' from the first bytes, else None."""
    for magic, name in _MAGIC.items():
        if head.startswith(magic):
            return name
    return None


def read_raster(path: str, *, spacing=None) -> Image:
    """Read a PNG/JPEG/BMP/TIFF picture as a 2D grey Image."""
    from PIL import Image as PILImage
    from PIL import UnidentifiedImageError

    path = os.fspath(path)
    check_file(path)
    # The project's own limit (check_image_size, below, from the header) applies, not
    # Pillow's decompression-bomb guard: that one refuses at another size (179 M
    # pixels), with another message, whatever $LMK_MAX_IMAGE_ELEMENTS says.
    PILImage.MAX_IMAGE_PIXELS = None
    try:
        with PILImage.open(path) as pic:
            fmt = pic.format or "raster"
            frames = getattr(pic, "n_frames", 1)
            if frames > 1:
                raise ImageReadError(
                    f"{path}: {fmt} file has {frames} pages/frames; only single pictures are supported"
                )
            mode = pic.mode
            check_image_size([pic.height, pic.width], path)
            if mode in _GREY_MODES:
                array = np.array(pic)
            elif mode == "1":
                array = np.array(pic, dtype=np.uint8)
            else:
                # RGB, RGBA, P (palette), LA, CMYK, YCbCr -> luminance, as Pillow defines it.
                array = np.array(pic.convert("L"))
    except UnidentifiedImageError as e:
        raise ImageReadError(f"{path}: not a readable picture ({e})") from e
    except (OSError, SyntaxError, ValueError) as e:  # truncated or corrupt data
        raise ImageReadError(f"{path}: cannot decode the picture ({type(e).__name__}: {e})") from e
    if mode.startswith("I;16"):
        array = array.astype(np.uint16, copy=False)
    if array.ndim != 2:
        raise ImageReadError(f"{path}: {fmt} decoded to shape {list(array.shape)}, expected 2D")
    spacing_, source = resolve_spacing([None, None], spacing, path)
    meta = {
        "path": path,
        "format": fmt,
        "modality": None,
        "dtype": str(array.dtype),
        "mode": mode,
        "spacing_source": source,
    }
    if mode not in _GREY_MODES and mode != "1":
        meta["converted_to_grey"] = True
    return Image(array, spacing_, None, None, meta)


def write_png(image: Image, path: str) -> None:
    """Write a 2D image as 8- or 16-bit greyscale PNG (geometry is not stored).

    uint8 stays 8-bit and uint16 16-bit; other integer types are accepted when
    their values fit one of the two. Floats must be converted by the caller,
    since any automatic scaling would silently change the values.
    """
    from PIL import Image as PILImage

    path = os.fspath(path)
    if image.ndim != 2:
        raise ConfigError(f"{path}: PNG holds 2D images only, got shape {list(image.shape)}")
    data = np.asarray(image.array)
    if data.dtype == np.bool_:
        data = data.astype(np.uint8)
    if not np.issubdtype(data.dtype, np.integer):
        raise ConfigError(
            f"{path}: PNG needs integer pixels, got {data.dtype}; convert to uint8 or uint16 first"
        )
    lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
    if data.dtype == np.uint8 or (data.dtype != np.uint16 and lo >= 0 and hi <= 255):
        pic = PILImage.fromarray(data.astype(np.uint8), mode="L")
    elif lo >= 0 and hi <= 65535:
        pic = PILImage.fromarray(data.astype(np.uint16))
    else:
        raise ConfigError(f"{path}: values {lo}..{hi} do not fit a 16-bit PNG")
    try:
        pic.save(path, format="PNG")
    except OSError as e:
        raise ConfigError(f"{path}: cannot write ({e.strerror or e})") from e
