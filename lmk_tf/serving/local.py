"""The served signature called in-process, with the server's validation.

`lmk-predict` uses it so a result on one machine equals what lmk-serve or TF
Serving answer for the same SavedModel, and the benchmarks use it as the
baseline without any transport.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lmk_tf.export.contract import DEFAULT_SIGNATURE, IMAGE, SPACING
from lmk_tf.image import Image
from lmk_tf.serving import servable
from lmk_tf.serving.validation import Limits


class LocalModel:
    """A SavedModel loaded in this process.

    Args:
      saved_model_dir: a version directory (holding saved_model.pb) or a base
        directory with integer versions (the highest is used).
      limits: request size limits, as the server applies them.
      warmup: replay assets.extra/tf_serving_warmup_requests after loading.
    """

    def __init__(self, saved_model_dir: str, *, limits: Limits = Limits(), warmup: bool = False):
        path, version = servable.resolve_model_dir(saved_model_dir)
        self.served = servable.load_version(path, version=version, limits=limits, warmup=warmup)
        self.path = path
        self.version = version

    @property
    def model_info(self) -> dict[str, Any]:
        return self.served.model_info

    @property
    def landmark_names(self) -> list[str] | None:
        names = self.served.model_info.get("landmark_names")
        return list(names) if names else None

    def predict(
        self, inputs: Mapping[str, Any], *, signature: str = DEFAULT_SIGNATURE
    ) -> dict[str, np.ndarray]:
        """Validated call of a signature: name -> array in, name -> array out."""
        return self.served.predict_arrays(signature, inputs)

    def predict_image(self, image: Image, *, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Landmarks for one image, shaped exactly like `client.predict_image`."""
        from lmk_tf.serving.client import shape_results

        outputs = self.predict({
            IMAGE: np.asarray(image.array, np.float32)[..., np.newaxis],
            SPACING: np.asarray(image.spacing, np.float32),
        })
        return shape_results(
            outputs, image, names if names is not None else self.landmark_names,
            model={"path": self.path, "version": self.version},
        )
