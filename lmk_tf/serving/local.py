"""The served signature called in-process with the server's validation, so that lmk-predict
answers as lmk-serve or TF Serving do for the same SavedModel (the benchmarks' baseline)."""

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lmk_tf.export.contract import DEFAULT_SIGNATURE, IMAGE, SPACING
from lmk_tf.export.results import shape_results
from lmk_tf.export.tensors import aligned
from lmk_tf.image import Image
from lmk_tf.serving import servable
from lmk_tf.serving.validation import Limits


class LocalModel:
    """A SavedModel loaded in this process: a version directory, or a base directory
    (its highest integer version), with the server's `limits` and optional `warmup`."""

    def __init__(self, saved_model_dir: str, *, limits: Limits = Limits(), warmup: bool = False):
        self.path, self.version = servable.resolve_model_dir(saved_model_dir)
        self.served = servable.load_version(self.path, version=self.version, limits=limits, warmup=warmup)
        self.model_info: dict[str, Any] = self.served.model_info
        self.landmark_names: list[str] | None = list(self.model_info.get("landmark_names") or []) or None

    def predict(self, inputs: Mapping[str, Any], *, signature: str = DEFAULT_SIGNATURE) -> dict[str, np.ndarray]:
        """Validated call of a signature: name -> array in, name -> array out."""
        return self.served.predict_arrays(signature, inputs)

    def predict_image(self, image: Image, *, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Landmarks for one image, shaped exactly like `client.predict_image`."""
        outputs = self.predict({IMAGE: aligned(image.array, np.float32)[..., np.newaxis],
                                SPACING: np.asarray(image.spacing, np.float32)})
        return shape_results(outputs, image, names if names is not None else self.landmark_names,
                             model={"path": self.path, "version": self.version})
