"""What `lmk-info` reports about an image, as plain JSON-able values."""

from __future__ import annotations

from typing import Any

import numpy as np

from lmk_tf.image import Image


def describe(image: Image) -> dict[str, Any]:
    """Geometry, type and provenance of an image.

    Keys: path, format, shape, spacing, origin, direction, dtype (of the array
    in memory), stored_dtype (as in the file), value_range [min, max] (NaNs
    ignored; None for an empty or all-NaN array), modality, spacing_source,
    geometry_tags (DICOM only, else None).
    """
    array = image.array
    value_range = None
    if array.size and not (np.issubdtype(array.dtype, np.floating) and np.all(np.isnan(array))):
        lo, hi = np.nanmin(array), np.nanmax(array)
        value_range = [lo.item(), hi.item()]
    meta = image.meta
    return {
        "path": meta.get("path"),
        "format": meta.get("format"),
        "shape": list(image.shape),
        "spacing": list(image.spacing),
        "origin": list(image.origin),
        "direction": image.direction.tolist(),
        "dtype": str(array.dtype),
        "stored_dtype": meta.get("dtype"),
        "value_range": value_range,
        "modality": meta.get("modality"),
        "spacing_source": meta.get("spacing_source"),
        "geometry_tags": meta.get("geometry_tags"),
    }


def _fmt(values) -> str:
    return "[" + ", ".join(f"{v:.6g}" for v in values) + "]"


def format_description(info: dict[str, Any]) -> str:
    """`describe`'s dict as aligned human-readable lines."""
    rows = [
        ("path", info["path"]),
        ("format", info["format"]),
        ("modality", info["modality"] or "-"),
        ("shape", " x ".join(str(s) for s in info["shape"]) + "  (array-axis order)"),
        ("spacing", _fmt(info["spacing"]) + f" mm  (from {info['spacing_source']})"),
        ("origin", _fmt(info["origin"]) + " mm LPS"),
        ("direction", "  ".join(_fmt(row) for row in info["direction"])),
        ("dtype", f"{info['dtype']}  (stored as {info['stored_dtype']})"),
        ("value range", "-" if info["value_range"] is None else _fmt(info["value_range"])),
    ]
    tags = info.get("geometry_tags")
    if tags:
        rows.append(("spacing tags", ", ".join(str(t) for t in tags.get("spacing", []))))
        rows.append(("origin tag", str(tags.get("origin"))))
        rows.append(("direction tag", str(tags.get("direction"))))
    width = max(len(k) for k, _ in rows)
    return "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
