"""Trained stages -> the composed GlobalToLocal model, and a fast predictor for it."""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from lmk_tf.errors import ModelError
from lmk_tf.image import Image
from lmk_tf.models.pipeline import GlobalToLocal
from lmk_tf.training.trainer import load_dataset_info, load_stage


def assemble(model_dir: str, *, presence_threshold=0.5, local_iterations=1) -> GlobalToLocal:
    """Composes the trained global and local stages found in `model_dir`."""
    info = load_dataset_info(model_dir)
    g_config, g_net = load_stage(model_dir, "global")
    l_config, l_net = load_stage(model_dir, "local")
    if g_config.ndim != l_config.ndim:
        raise ModelError(f"{model_dir}: global stage is {g_config.ndim}D, local stage {l_config.ndim}D")
    return GlobalToLocal(
        g_net, l_net, dataclasses.asdict(g_config), dataclasses.asdict(l_config),
        info["landmark_names"], presence_threshold=presence_threshold,
        local_iterations=local_iterations, name="global_to_local",
    )


def signature_specs(ndim: int):
    """The served input signature: any-size single-channel image and its spacing."""
    return [
        tf.TensorSpec([None] * ndim + [1], tf.float32, name="image"),
        tf.TensorSpec([ndim], tf.float32, name="spacing"),
    ]


class Predictor:
    """Runs a GlobalToLocal model on Images, traced once for any image size."""

    def __init__(self, model: GlobalToLocal):
        self.model = model
        self._fn = tf.function(
            lambda image, spacing: model({"image": image, "spacing": spacing}),
            input_signature=signature_specs(model.ndim),
        )

    def __call__(self, image: Image) -> dict[str, np.ndarray]:
        out = self._fn(
            tf.constant(image.array[..., None], tf.float32), tf.constant(image.spacing, tf.float32)
        )
        return {k: v.numpy() for k, v in out.items()}
