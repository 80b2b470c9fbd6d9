"""A small real SavedModel with exactly the served landmark contract, for tests.

`serving_default(image, spacing)` returns three "landmarks" computed from the
image, so tests can predict them independently:

0. ``centroid``: the intensity-weighted centroid of (image - min);
1. ``brightest``: the index of the maximum (first one, row-major);
2. ``centre``: the geometric centre, (shape - 1) / 2.

``confidence`` is tanh(|max|) for the first two and 0.5 for the centre;
``present`` is confidence > 0.25. Like lmk_tf.export's graph, it asserts
spacing > 0 and at least 2 pixels per axis with tf.debugging before anything
else runs, and also max(image) < 1e6, a check the server cannot know of.
``model_info`` (no inputs) returns assets/model_info.json as a string, which
is how clients get landmark names from a server; ``encode`` returns the image
as ``png_bytes`` (binary) and its ``format`` ("png"), for string outputs.
``serving_batch`` and (2D) ``serving_encoded`` are built around ``serving_default``
by lmk_tf.export.signatures, as every export's are.
"""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf

NAMES = ["centroid", "brightest", "centre"]
ASSERT_LIMIT = 1e6


def expected(image: np.ndarray, spacing) -> dict[str, np.ndarray]:
    """What the toy model returns, computed with numpy (image without channel axis)."""
    image = np.asarray(image, np.float64)
    w = image - image.min()
    grids = np.indices(image.shape, dtype=np.float64)
    total = w.sum()
    if total > 0:
        centroid = np.array([(g * w).sum() / total for g in grids])
    else:
        centroid = (np.array(image.shape) - 1) / 2.0
    brightest = np.array(np.unravel_index(np.argmax(image), image.shape), np.float64)
    centre = (np.array(image.shape) - 1) / 2.0
    index = np.stack([centroid, brightest, centre]).astype(np.float32)
    c = np.float32(np.tanh(abs(image.max())))
    confidence = np.array([c, c, 0.5], np.float32)
    return {
        "landmarks_index": index,
        "landmarks_mm": (index * np.asarray(spacing, np.float32)).astype(np.float32),
        "confidence": confidence,
        "present": confidence > 0.25,
    }


class ToyLandmarks(tf.Module):
    def __init__(self, ndim: int, info_json: str):
        super().__init__()
        self.ndim = ndim
        self.info_json = tf.constant(info_json)
        # A variable so the SavedModel has variables/ like a real model.
        self.scale = tf.Variable(1.0, trainable=False)
        spec = [
            tf.TensorSpec([None] * ndim + [1], tf.float32, name="image"),
            tf.TensorSpec([ndim], tf.float32, name="spacing"),
        ]
        self.serve = tf.function(self._serve, input_signature=spec)
        self.info = tf.function(self._info, input_signature=[])
        self.encode = tf.function(self._encode, input_signature=spec[:1])

    def _serve(self, image, spacing):
        checks = [
            tf.debugging.assert_positive(spacing, message="input 'spacing' must be > 0"),
            tf.debugging.assert_greater_equal(
                tf.shape(image)[:-1], 2, message="input 'image' must be at least 2 pixels along every axis"),
            tf.debugging.assert_less(tf.reduce_max(image), ASSERT_LIMIT, message="image maximum must be < 1e6"),
        ]
        with tf.control_dependencies(checks):
            img = tf.identity(image[..., 0]) * self.scale
        peak = tf.reduce_max(img)
        shape = tf.shape(img)
        w = img - tf.reduce_min(img)
        total = tf.reduce_sum(w)
        centre = (tf.cast(shape, tf.float32) - 1.0) / 2.0
        grids = tf.meshgrid(*[tf.range(shape[a], dtype=tf.float32) for a in range(self.ndim)],
                            indexing="ij")
        centroid = tf.stack([tf.reduce_sum(g * w) for g in grids]) / tf.maximum(total, 1e-30)
        centroid = tf.where(total > 0, centroid, centre)
        flat = tf.argmax(tf.reshape(img, [-1]), output_type=tf.int32)
        brightest = tf.cast(tf.unravel_index(flat, shape), tf.float32)
        index = tf.stack([centroid, brightest, centre])
        c = tf.tanh(tf.abs(peak))
        confidence = tf.stack([c, c, tf.constant(0.5)])
        return {
            "landmarks_index": index,
            "landmarks_mm": index * spacing[tf.newaxis, :],
            "confidence": confidence,
            "present": confidence > 0.25,
        }

    def _info(self):
        return {"model_info": self.info_json}

    def _encode(self, image):
        pixels = tf.cast(tf.clip_by_value(image, 0.0, 1.0) * 255.0, tf.uint8)
        return {"png_bytes": tf.io.encode_png(pixels), "format": tf.constant("png")}


def export_toy_model(
    version_dir: str, *, ndim: int = 2, warmup: bool = True, names=NAMES
) -> str:
    """Write the toy SavedModel to `version_dir` (e.g. base/1); returns it."""
    info = {"landmark_names": list(names), "ndim": ndim, "toy": True}
    from lmk_tf.export.signatures import batch_signature, encoded_signature

    module = ToyLandmarks(ndim, json.dumps(info))
    signatures = {"serving_default": module.serve, "model_info": module.info, "encode": module.encode,
                  "serving_batch": batch_signature(module.serve, ndim)}
    if ndim == 2:
        signatures["serving_encoded"] = encoded_signature(module.serve)
    tf.saved_model.save(module, version_dir, signatures=signatures)
    os.makedirs(os.path.join(version_dir, "assets"), exist_ok=True)
    with open(os.path.join(version_dir, "assets", "model_info.json"), "w") as f:
        json.dump(info, f)
    if warmup:
        from tensorflow_serving.apis import predict_pb2

        from lmk_tf.export.contract import WARMUP_FILE
        from lmk_tf.export.warmup import write_warmup_requests

        request = predict_pb2.PredictRequest()
        request.model_spec.signature_name = "serving_default"
        shape = [4] * ndim + [1]
        request.inputs["image"].CopyFrom(
            tf.make_tensor_proto(np.arange(np.prod(shape), dtype=np.float32).reshape(shape))
        )
        request.inputs["spacing"].CopyFrom(tf.make_tensor_proto(np.ones(ndim, np.float32)))
        write_warmup_requests(os.path.join(version_dir, WARMUP_FILE), [request])
    return version_dir
