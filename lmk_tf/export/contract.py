"""The served contract: what every export writes and every server, client and batch job reads.

One place for the signature names, their inputs and outputs, the files a
version directory carries, and the request limits, so export, the embedded
server, the gRPC client and the batch pipeline cannot drift apart.
TensorFlow is imported only where a TensorSpec is needed.
"""

from __future__ import annotations

import json
import os

from lmk_tf.errors import ModelError

# Signatures of every exported version.
DEFAULT_SIGNATURE = "serving_default"
INFO_SIGNATURE = "model_info"
# The same inputs; every output of the graph, the uncertainty signals included (for calibration).
DIAGNOSTICS_SIGNATURE = "diagnostics"
# The outputs of `serving_default` with a leading batch dimension on every input and output
# (images of one size per batch): what TF Serving's --enable_batching can merge along dim 0.
BATCH_SIGNATURE = "serving_batch"
# `serving_default` for a PNG or JPEG file decoded in the graph (2D models only).
ENCODED_SIGNATURE = "serving_encoded"

# Inputs of `serving_default`.
IMAGE = "image"
SPACING = "spacing"
# Input of `serving_encoded` in place of `image`: the bytes of a PNG (8/16-bit) or JPEG file.
IMAGE_BYTES = "image_bytes"

# Outputs of `serving_default`, in this order: the landmarks (every version has them) and
# their predicted error (versions exported since the uncertainty outputs were added).
LANDMARK_OUTPUTS = ("landmarks_index", "landmarks_mm", "confidence", "present")
UNCERTAINTY_OUTPUTS = ("expected_error_mm", "radius90_mm")
OUTPUT_KEYS = LANDMARK_OUTPUTS + UNCERTAINTY_OUTPUTS
# The single string output of `model_info`.
INFO_OUTPUT = "model_info"

# Files inside a version directory `<base>/<integer version>/`.
MODEL_INFO_FILE = os.path.join("assets", "model_info.json")
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")
# TF Serving replays at most this many warm-up records and refuses files with more.
MAX_WARMUP_RECORDS = 1000

# Largest request or response message, MiB: a 512^3 float32 volume fits.
MAX_REQUEST_MB = 512
# Most pixels a `serving_encoded` file may decode to (checked from its header first).
MAX_ENCODED_PIXELS = 64 * 2**20


def signature_specs(ndim: int):
    """The inputs of `serving_default`: an any-size single-channel image and its spacing."""
    import tensorflow as tf

    return [
        tf.TensorSpec([None] * ndim + [1], tf.float32, name=IMAGE),
        tf.TensorSpec([ndim], tf.float32, name=SPACING),
    ]


def batch_signature_specs(ndim: int):
    """The inputs of `serving_batch`: B images of one size and their B spacings."""
    import tensorflow as tf

    return [
        tf.TensorSpec([None] * (ndim + 1) + [1], tf.float32, name=IMAGE),
        tf.TensorSpec([None, ndim], tf.float32, name=SPACING),
    ]


def encoded_signature_specs():
    """The inputs of `serving_encoded`: one PNG/JPEG file (a scalar string) and its spacing."""
    import tensorflow as tf

    return [tf.TensorSpec([], tf.string, name=IMAGE_BYTES), tf.TensorSpec([2], tf.float32, name=SPACING)]


def read_model_info(version_dir: str, *, required: bool = True) -> dict:
    """assets/model_info.json of an exported version ({} when absent and not required)."""
    path = os.path.join(version_dir, MODEL_INFO_FILE)
    try:
        with open(path, encoding="utf-8") as f:
            info = json.load(f)
    except FileNotFoundError:
        if not required:
            return {}
        raise ModelError(f"{path}: missing; is {version_dir} an lmk-tf SavedModel?") from None
    except (OSError, ValueError) as e:
        raise ModelError(f"{path}: unreadable model info: {e}") from None
    if not isinstance(info, dict):
        raise ModelError(f"{path}: must hold a JSON object")
    return info
