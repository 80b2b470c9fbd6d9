"""What commands send to a model: images read from files, spacing from flags. Free of TensorFlow
and gRPC, so a bad file or flag is refused in well under a second, before any model or server."""

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
