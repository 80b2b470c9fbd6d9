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

# Inputs of `serving_default`.
IMAGE = "image"
SPACING = "spacing"

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


def signature_specs(ndim: int):
    """The inputs of `serving_default`: an any-size single-channel image and its spacing."""
    import tensorflow as tf

    return [
        tf.TensorSpec([None] * ndim + [1], tf.float32, name=IMAGE),
        tf.TensorSpec([ndim], tf.float32, name=SPACING),
    ]


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
