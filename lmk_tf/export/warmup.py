"""TF Serving warm-up records: PredictRequests stored in the version directory.

TF Serving (and lmk-serve) replay `assets.extra/tf_serving_warmup_requests`
when a version loads, so the first real request does not pay for tracing.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from lmk_tf.errors import ModelError
from lmk_tf.export.contract import DEFAULT_SIGNATURE, IMAGE, MAX_WARMUP_RECORDS, SPACING


def warmup_requests(model_name: str, examples):
    """PredictRequests that TF Serving replays when it loads the version."""
    from tensorflow_serving.apis import model_pb2, predict_pb2

    for image, spacing in examples:
        request = predict_pb2.PredictRequest(
            model_spec=model_pb2.ModelSpec(name=model_name, signature_name=DEFAULT_SIGNATURE)
        )
        request.inputs[IMAGE].CopyFrom(tf.make_tensor_proto(image.astype(np.float32)))
        request.inputs[SPACING].CopyFrom(tf.make_tensor_proto(np.asarray(spacing, np.float32)))
        yield request


def write_warmup_requests(path: str, requests) -> None:
    """Write PredictRequests as a TF Serving warm-up file (TFRecord of PredictionLog)."""
    from tensorflow_serving.apis import prediction_log_pb2

    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for request in requests:
            entry = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request)
            )
            writer.write(entry.SerializeToString())


def read_warmup_requests(path: str):
    """The PredictRequests of a warm-up file (none if it is absent), refused as TF Serving
    refuses them: more than MAX_WARMUP_RECORDS, or a record that is not a predict_log."""
    from tensorflow_serving.apis import prediction_log_pb2

    if not os.path.isfile(path):
        return
    for count, record in enumerate(tf.data.TFRecordDataset(path), 1):
        if count > MAX_WARMUP_RECORDS:
            raise ModelError(f"{path}: more than {MAX_WARMUP_RECORDS} warm-up records")
        entry = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        if entry.WhichOneof("log_type") != "predict_log":
            raise ModelError(f"{path}: record {count} is a {entry.WhichOneof('log_type')}; "
                             "only predict_log records are supported")
        yield entry.predict_log.request
