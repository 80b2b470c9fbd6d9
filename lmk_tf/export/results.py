"""Signature outputs -> plain, JSON-able results (names, world coordinates, predicted error),
and those results as JSON or CSV text: the same for lmk-predict, lmk-client and lmk-batch."""

from typing import Any

import numpy as np

from lmk_tf.errors import ModelError
from lmk_tf.export import contract
from lmk_tf.image import Image


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
