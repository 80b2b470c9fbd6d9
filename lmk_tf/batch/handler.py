"""The RunInference ModelHandler of lmk-batch: image files in, lmk-predict's records out.

Beam's TFModelHandlerTensor stacks a batch into one tensor (images of one
shape) and needs tensorflow-hub; the served signature takes one image of any
size, so this handler feeds the batch's images one by one to the SavedModel,
loaded once per worker process with `LocalModel`. Reading the file is the
handler's preprocessing step, so RunInference's dead-letter outputs keep the
files that cannot be read apart from those that cannot be predicted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from apache_beam.ml.inference.base import ModelHandler

from lmk_tf.image import Image
from lmk_tf.serving.inputs import read_image_for_model


class ImageFileReader:
    """Path -> (path, Image), with the spacing lmk-predict's --spacing would give.

    A class rather than a closure so Beam can pickle it to its workers.
    """

    def __init__(self, spacing: tuple[float, ...] | None = None):
        self.spacing = spacing

    def __call__(self, path: str) -> tuple[str, Image]:
        import logging

        return path, read_image_for_model(path, self.spacing, warn=lambda m: logging.warning("%s: %s", path, m))


class LandmarkModelHandler(ModelHandler[tuple[str, Image], dict, Any]):
    """Predicts landmarks with a SavedModel of the served contract.

    Args:
      model_dir: a SavedModel version directory, or a base directory (its
        highest integer version is used), as lmk-predict's --model.
      max_batch_size: images per RunInference batch. The model sees one image
        at a time whatever the batch; a batch that fails goes to the errors
        output whole, so the default of 1 keeps one bad file from taking good
        ones with it.
    """

    def __init__(self, model_dir: str, *, max_batch_size: int = 1):
        super().__init__(min_batch_size=1, max_batch_size=max_batch_size)
        self.model_dir = model_dir

    def load_model(self):
        from lmk_tf.serving.local import LocalModel

        return LocalModel(self.model_dir)

    def run_inference(
        self, batch: Sequence[tuple[str, Image]], model, inference_args: dict | None = None
    ) -> Iterable[dict]:
        # The same record `lmk-predict --format=json` prints for the file.
        return [{"file": path, **model.predict_image(image)} for path, image in batch]
