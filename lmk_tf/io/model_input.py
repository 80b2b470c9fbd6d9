"""What commands send to a model: images read from files, spacing from flags, and the file
bytes `serving_encoded` takes. Free of TensorFlow and gRPC, so a bad file or flag is refused in
well under a second, before any model or server."""

import io
import sys
import warnings

import numpy as np

from lmk_tf.errors import ConfigError
from lmk_tf.image import Image


def read_image_for_model(path: str, spacing=None, *, warn=None) -> Image:
    """Read an image file for prediction. Readers fall back to 1.0 mm for a file that states no
    spacing; millimetres from a guessed spacing are silently wrong, so here that is an error
    unless `spacing` is given. Other reader warnings go to `warn(message)`."""
    from lmk_tf.io import read_image

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image = read_image(path, spacing=spacing)
    if image.meta.get("spacing_source") == "default":
        raise ConfigError(
            f"{path}: the file states no pixel spacing; give --spacing (mm per pixel, "
            f"{'row,col' if image.ndim == 2 else 'slice,row,col'}) - a guessed 1.0 mm would make "
            "every millimetre in the answer wrong")
    for w in caught:
        if warn is not None and "states no spacing" not in str(w.message):
            warn(str(w.message))
    return image


def parse_spacing(values) -> tuple[float, ...] | None:
    """A --spacing flag's list of strings -> floats > 0 (None when not given)."""
    if not values:
        return None
    try:
        spacing = tuple(float(v) for v in values)
    except ValueError:
        raise ConfigError(f"--spacing must be numbers, got {','.join(values)}") from None
    if not all(np.isfinite(s) and s > 0 for s in spacing):
        raise ConfigError(f"--spacing must be > 0, got {','.join(values)}")
    return spacing


def read_files_for_model(files, spacing_values, *, prog: str):
    """[(path, Image)] for every file, all read (or refused) before any is predicted; reader
    warnings are `<prog>: warning: ...` lines on stderr."""
    spacing = parse_spacing(spacing_values)
    return [(path, read_image_for_model(path, spacing, warn=lambda m: print(f"{prog}: warning: {m}", file=sys.stderr)))
            for path in files]


# The pictures whose file goes to `serving_encoded` as it is: the graph decodes them to exactly the
# pixels Pillow gave the reader (libjpeg's accurate IDCT; grey PNG of 8 or 16 bits). PNG's IHDR
# has the bit depth at byte 24 and the colour type (0 = grey) at 25.
_AS_IS = {"JPEG": ("L", "RGB"), "PNG": ("L", "I;16", "I;16B", "I")}


def encode_for_request(path: str, image: Image) -> bytes | None:
    """The PNG or JPEG bytes that stand for `image` (read from `path`) in a `serving_encoded`
    request: the file itself when it is a JPEG or a grey 8/16-bit PNG, else its pixels as a
    lossless PNG (8-bit when they fit, else 16-bit; zlib level 1: fast, half the raw size).
    None when no PNG holds them exactly (a volume, values below 0, above 65535 or fractional):
    those go as a float32 tensor."""
    if image.ndim != 2:
        return None
    fmt, mode = image.meta.get("format"), image.meta.get("mode")
    if mode in _AS_IS.get(fmt, ()):
        with open(path, "rb") as f:
            data = f.read()
        if fmt == "JPEG" or (data[25:26] == b"\0" and data[24] in (8, 16)):
            return data
    pixels = np.asarray(image.array)
    if pixels.dtype.kind not in "ui" and not (np.isfinite(pixels).all() and (pixels == np.round(pixels)).all()):
        return None
    if pixels.size == 0 or pixels.min() < 0 or pixels.max() > 65535:
        return None
    from PIL import Image as PILImage

    out = io.BytesIO()
    PILImage.fromarray(pixels.astype(np.uint8 if pixels.max() <= 255 else np.uint16, copy=False)).save(
        out, format="PNG", compress_level=1)
    return out.getvalue()
