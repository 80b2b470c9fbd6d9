"""Signature outputs -> plain, JSON-able results (names, world coordinates, predicted error),
and those results as JSON or CSV text: the same for lmk-predict, lmk-client and lmk-batch."""

import csv
import io
import json
from typing import Any

import numpy as np

from lmk_tf.errors import ConfigError, ModelError
from lmk_tf.export import contract
from lmk_tf.image import Image

FORMATS = ("json", "csv")


def shape_results(outputs: dict[str, np.ndarray], image: Image, names=None, *,
                  model: dict | None = None) -> dict[str, Any]:
    """Signature outputs -> plain, JSON-able results with world coordinates added."""
    missing = [n for n in contract.LANDMARK_OUTPUTS if n not in outputs]
    if missing:
        raise ModelError(f"the model's outputs lack {missing[0]!r}; it returned {sorted(outputs)} "
                         f"(the contract is {', '.join(contract.OUTPUT_KEYS)})")
    # Older versions have no predicted error; their answers simply lack it.
    errors = {k: np.asarray(outputs[k], np.float64) for k in contract.UNCERTAINTY_OUTPUTS if k in outputs}
    index, mm, confidence = (np.asarray(outputs[k], np.float64) for k in contract.OUTPUT_KEYS[:3])
    present = np.asarray(outputs[contract.OUTPUT_KEYS[3]], bool)
    if index.ndim != 2 or index.shape[1] != image.ndim:
        raise ModelError(f"{contract.OUTPUT_KEYS[0]} has shape {list(index.shape)}; "
                         f"expected [L, {image.ndim}] for a {image.ndim}D image")
    names = [f"landmark_{i}" for i in range(len(index))] if names is None else names
    if len(names) != len(index):
        raise ModelError(f"{len(names)} landmark names for {len(index)} landmarks")
    world = image.index_to_world(index)
    return {
        "model": dict(model or {}), "shape": list(image.shape), "spacing": list(image.spacing),
        "landmarks": [
            {"name": str(names[i]), "index": index[i].tolist(), "mm": mm[i].tolist(),
             "world": [float(v) for v in world[i]], "confidence": float(confidence[i]),
             "present": bool(present[i]), **{k: float(v[i]) for k, v in errors.items()}}
            for i in range(len(index))
        ],
    }


def mark_for_review(results, review_mm: float) -> tuple[int, int]:
    """Sets "review" on each landmark whose expected_error_mm is above `review_mm`.

    `results`: one result dict or a list of them. Returns (marked, landmarks
    with a predicted error); a model without one marks nothing.
    """
    marked = total = 0
    for r in [results] if isinstance(results, dict) else results:
        for lm in r["landmarks"]:
            if "expected_error_mm" in lm:
                lm["review"] = bool(lm["expected_error_mm"] > review_mm)
                marked += lm["review"]
                total += 1
    return marked, total


def review_line(marked: int, total: int, review_mm: float) -> str:
    if not total:
        return "--review_mm: this model predicts no error (exported before expected_error_mm); nothing marked"
    return (f"{marked} of {total} landmarks have an expected error above {review_mm:g} mm: "
            "review them (marked \"review\": true)")


def _g(values) -> list[str]:
    return [f"{v:.6g}" for v in values]


def format_results(results, fmt: str = "json") -> str:
    """One result dict or a list of them (each may carry "file") as JSON or CSV text: one
    row per image and landmark, axes of the largest dimensionality (2D rows padded in 3D)."""
    if fmt not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    items = [results] if isinstance(results, dict) else list(results)
    if fmt == "json":
        return json.dumps(results if isinstance(results, dict) else items, indent=2)
    ndim = max((len(r["shape"]) for r in items), default=2)
    index_axes, world_axes = ["slice", "row", "col"][-ndim:], ["x", "y", "z"][:ndim]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "landmark", "present", "confidence"] + [f"index_{a}" for a in index_axes]
                    + [f"mm_{a}" for a in index_axes] + [f"world_{a}" for a in world_axes]
                    + list(contract.UNCERTAINTY_OUTPUTS) + ["review"])
    for r in items:
        pad = [""] * (ndim - len(r["shape"]))  # a 2D row in a 3D table: no slice axis in front, no z at the end
        for lm in r["landmarks"]:
            writer.writerow([r.get("file", ""), lm["name"], int(lm["present"])] + _g([lm["confidence"]]) + pad
                            + _g(lm["index"]) + pad + _g(lm["mm"]) + _g(lm["world"]) + pad
                            + [f"{lm[k]:.4g}" if k in lm else "" for k in contract.UNCERTAINTY_OUTPUTS]
                            + [int(lm["review"]) if "review" in lm else ""])
    return out.getvalue()
