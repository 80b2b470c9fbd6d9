"""Trained stages -> ONE SavedModel in TensorFlow Serving's layout.

`saved_models/<name>/<version>/` holds saved_model.pb, variables/, assets/
(model_info.json: landmark names, ndim, stage settings) and
assets.extra/tf_serving_warmup_requests. The directory is written under a
hidden temporary name and renamed into place, so a server polling the base
path never sees half a model.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time

import numpy as np
import tensorflow as tf

from lmk_tf.errors import ConfigError
from lmk_tf.export.contract import (
    BATCH_SIGNATURE,
    DEFAULT_SIGNATURE,
    DIAGNOSTICS_SIGNATURE,
    ENCODED_SIGNATURE,
    IMAGE,
    IMAGE_BYTES,
    INFO_OUTPUT,
    INFO_SIGNATURE,
    MODEL_INFO_FILE,
    OUTPUT_KEYS,
    SPACING,
    WARMUP_FILE,
    signature_specs,
)
from lmk_tf.export.signatures import batch_signature, encoded_signature
from lmk_tf.export.warmup import warmup_requests, write_warmup_requests
from lmk_tf.method.model_dir import assemble

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class ServingModule(tf.Module):
    """Holds the composed model and the signatures: `serving_default`, `serving_batch`,
    `serving_encoded` (2D), `diagnostics` and `model_info`.

    `model_info` (no inputs, one string output) returns assets/model_info.json:
    TF Serving's GetModelMetadata lists only signatures, and this is how a gRPC
    client learns the landmark names without access to the model's files.
    """

    def __init__(self, pipeline, info_json: str):
        super().__init__(name="lmk_serving")
        # The Keras model itself is no child of this module, only its variables: as a
        # child, tf.saved_model.save traces its call three more times for nothing
        # (the signatures are all a server loads), which is most of an export's time.
        self._pipeline = lambda: pipeline  # not tracked, unlike an attribute, list or tuple
        self.model_variables = list(pipeline.variables)
        self.info_json = info_json
        # Each signature is traced once, here, and kept as a concrete function: the graph
        # in `diagnose`, which the others call. (A tf.function attribute is traced again by
        # tf.saved_model.save, and one called inside another is traced again too.)
        specs = signature_specs(pipeline.ndim)
        self.diagnose = tf.function(self._checked, input_signature=specs).get_concrete_function()
        self.serve = tf.function(self._serve, input_signature=specs).get_concrete_function()
        self.info = tf.function(lambda: {INFO_OUTPUT: tf.constant(self.info_json)},
                                input_signature=[]).get_concrete_function()
        self.serve_batch = batch_signature(self.serve, pipeline.ndim).get_concrete_function()
        self.serve_encoded = encoded_signature(self.serve).get_concrete_function() if pipeline.ndim == 2 else None

    @property
    def pipeline(self):
        return self._pipeline()

    def signatures(self) -> dict:
        """Signature name -> concrete function, as tf.saved_model.save takes them."""
        functions = {DEFAULT_SIGNATURE: self.serve, BATCH_SIGNATURE: self.serve_batch,
                     ENCODED_SIGNATURE: self.serve_encoded, INFO_SIGNATURE: self.info,
                     DIAGNOSTICS_SIGNATURE: self.diagnose}
        return {name: fn for name, fn in functions.items() if fn is not None}

    def _serve(self, image, spacing):
        out = self.diagnose(image=image, spacing=spacing)
        return {k: out[k] for k in OUTPUT_KEYS}

    def _checked(self, image, spacing):
        # Checks in the graph: stock TF Serving has no validation of its own,
        # and a failed Assert reaches its clients as INVALID_ARGUMENT.
        checks = [
            tf.debugging.assert_all_finite(spacing, "input 'spacing' must be finite"),
            tf.debugging.assert_positive(spacing, message="input 'spacing' must be > 0"),
            tf.debugging.assert_greater_equal(
                tf.shape(image)[:-1], 2, message="input 'image' needs at least 2 pixels per axis"
            ),
            tf.debugging.assert_equal(tf.shape(image)[-1], 1, message="input 'image' must have 1 channel"),
            tf.debugging.assert_all_finite(image, "input 'image' must be finite (no NaN/Inf)"),
        ]
        with tf.control_dependencies(checks):
            return self.pipeline({"image": tf.identity(image), "spacing": tf.identity(spacing)})


def warmup_for_all(name: str, image: np.ndarray, spacing, signatures):
    """One warm-up request per image signature, so none pays its first-call set-up in a
    client's request: serving_default, serving_batch (B=1), serving_encoded (an 8-bit PNG)."""
    from tensorflow_serving.apis import predict_pb2

    yield from warmup_requests(name, [(image, spacing)])
    spacing = np.asarray(spacing, np.float32)
    grey = np.clip(image * 32 + 128, 0, 255).astype(np.uint8)
    inputs = {BATCH_SIGNATURE: {IMAGE: image[None], SPACING: spacing[None]},
              ENCODED_SIGNATURE: {IMAGE_BYTES: tf.io.encode_png(grey).numpy(), SPACING: spacing}}
    for signature in (s for s in inputs if s in signatures):
        request = predict_pb2.PredictRequest()
        request.model_spec.name, request.model_spec.signature_name = name, signature
        for key, value in inputs[signature].items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
        yield request


def next_version(base: str) -> int:
    """One more than the highest integer version directory under `base` (1 if none)."""
    versions = [int(d) for d in os.listdir(base) if d.isdigit()] if os.path.isdir(base) else []
    return max(versions, default=0) + 1


def model_info(pipeline, extra: dict | None = None) -> dict:
    info = {
        "landmark_names": pipeline.landmark_names,
        "ndim": pipeline.ndim,
        "global_spacing_mm": pipeline.global_config["spacing"],
        "local_spacing_mm": pipeline.local_config["spacing"],
        "presence_threshold": pipeline.presence_threshold,
        "local_iterations": pipeline.local_iterations,
        "shift_crops": pipeline.shift_crops,
        "global_shifts": pipeline.global_shifts,
        "member_weighting": pipeline.member_weighting,
        "normalise_scale": pipeline.normalise_scale,
        "reference_distances_mm": pipeline.reference_distances_mm,
        "shape_weights": pipeline.shape_weights,
        "calibration": pipeline.calibration,
        "global_config": pipeline.global_config,
        "local_config": pipeline.local_config,
        "extra_local_configs": pipeline.extra_local_configs,
        "inputs": {"image": "float32 [*spatial, 1]", "spacing": f"float32 [{pipeline.ndim}] mm"},
        "signatures": [DEFAULT_SIGNATURE, BATCH_SIGNATURE] + ([ENCODED_SIGNATURE] if pipeline.ndim == 2 else []),
        "outputs": list(OUTPUT_KEYS),
        "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    info.update(extra or {})
    return info


def export(
    model_dir: str,
    base_dir: str,
    *,
    version: int | None = None,
    presence_threshold: float | None = None,
    local_iterations: int | None = None,
    shift_crops: int | None = None,
    global_shifts: int | None = None,
    calibration: dict | None = None,
    normalise_scale: bool | None = None,
    reference_distances_mm=None,
    shape_weights=None,
    warmup_shape=None,
    warmup_spacing=None,
    extra_info: dict | None = None,
) -> str:
    """Exports the trained stages in `model_dir` to `base_dir/<version>/`; returns that path.

    `presence_threshold` and `local_iterations` default to what training wrote
    to `<model_dir>/inference.json` (the preset's), so the export answers as the
    recipe that trained it measured; a value given here overrides it.
    """
    pipeline = assemble(model_dir, presence_threshold=presence_threshold, local_iterations=local_iterations,
                        calibration=calibration, shift_crops=shift_crops, global_shifts=global_shifts,
                        normalise_scale=normalise_scale,
                        reference_distances_mm=reference_distances_mm, shape_weights=shape_weights)
    return export_pipeline(pipeline, base_dir, version=version, warmup_shape=warmup_shape,
                           warmup_spacing=warmup_spacing, extra_info=extra_info)


def export_pipeline(pipeline, base_dir: str, *, version: int | None = None, warmup_shape=None,
                    warmup_spacing=None, extra_info: dict | None = None) -> str:
    """Exports a composed `GlobalToLocal` to `base_dir/<version>/`; returns that path."""
    name = os.path.basename(os.path.normpath(base_dir))
    if not _NAME.match(name):
        raise ConfigError(f"model name {name!r} (last part of {base_dir}) must be letters, digits, '_', '-', '.'")
    os.makedirs(base_dir, exist_ok=True)
    version = next_version(base_dir) if version is None else int(version)
    if version < 1:
        raise ConfigError(f"version must be a positive integer, got {version}")
    final = os.path.join(base_dir, str(version))
    if os.path.exists(final):
        raise ConfigError(f"{final} already exists; versions are immutable, pick another --version")

    info = model_info(pipeline, extra_info)
    module = ServingModule(pipeline, json.dumps(info))
    tmp = os.path.join(base_dir, f".tmp-{version}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        signatures = module.signatures()
        tf.saved_model.save(module, tmp, signatures=signatures)
        os.makedirs(os.path.dirname(os.path.join(tmp, MODEL_INFO_FILE)), exist_ok=True)
        with open(os.path.join(tmp, MODEL_INFO_FILE), "w") as f:
            json.dump(info, f, indent=2)
        ndim = pipeline.ndim
        shape = tuple(warmup_shape or ((256, 256) if ndim == 2 else (64, 64, 64)))
        spacing = warmup_spacing or [pipeline.global_config["spacing"] / 2.0] * ndim
        warm = np.random.default_rng(0).normal(size=shape + (1,)).astype(np.float32)
        write_warmup_requests(os.path.join(tmp, WARMUP_FILE), warmup_for_all(name, warm, spacing, signatures))
        os.rename(tmp, final)
    except Exception:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final
