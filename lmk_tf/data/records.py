"""TFRecord shards of prepared images: what `lmk-prepare` writes and training reads.

One example per image, already normalised and resampled to a stage's spacing:

* image: float16 bytes, array-axis order, shape in `shape`;
* spacing: the effective mm per pixel after resampling;
* points: [L * ndim] landmark positions in this image's pixel indices, NaN
  where the landmark is not annotated;
* image_id: the source file's identifier.
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf


def _bytes(v):
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))


def _floats(v):
    return tf.train.Feature(float_list=tf.train.FloatList(value=list(np.asarray(v, np.float32).ravel())))


def _ints(v):
    return tf.train.Feature(int64_list=tf.train.Int64List(value=list(np.asarray(v, np.int64).ravel())))


def serialize_example(image: np.ndarray, spacing, points: np.ndarray, image_id: str) -> bytes:
    """One prepared image -> a serialized tf.train.Example."""
    image = np.asarray(image, np.float16)
    features = {
        "image": _bytes(image.tobytes()),
        "shape": _ints(image.shape),
        "spacing": _floats(spacing),
        "points": _floats(points),
        "image_id": _bytes(image_id.encode("utf-8")),
    }
    return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


def write_shards(examples, directory: str, prefix: str, num_shards: int) -> list[str]:
    """Writes serialized examples round-robin into `num_shards` files."""
    os.makedirs(directory, exist_ok=True)
    num_shards = max(1, min(num_shards, len(examples)))
    paths = [
        os.path.join(directory, f"{prefix}-{i:05d}-of-{num_shards:05d}.tfrecord")
        for i in range(num_shards)
    ]
    writers = [tf.io.TFRecordWriter(p) for p in paths]
    try:
        for i, ex in enumerate(examples):
            writers[i % num_shards].write(ex)
    finally:
        for w in writers:
            w.close()
    return paths


def parse_example(serialized, ndim: int, num_landmarks: int):
    """Serialized example -> dict(image [*spatial, 1] float32, spacing, points, present, image_id)."""
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "shape": tf.io.FixedLenFeature([ndim], tf.int64),
        "spacing": tf.io.FixedLenFeature([ndim], tf.float32),
        "points": tf.io.FixedLenFeature([num_landmarks * ndim], tf.float32),
        "image_id": tf.io.FixedLenFeature([], tf.string),
    }
    ex = tf.io.parse_single_example(serialized, spec)
    image = tf.io.decode_raw(ex["image"], tf.float16)
    image = tf.cast(tf.reshape(image, tf.cast(ex["shape"], tf.int32)), tf.float32)[..., None]
    points = tf.reshape(ex["points"], [num_landmarks, ndim])
    present = tf.reduce_all(tf.math.is_finite(points), axis=-1)
    return {
        "image": image,
        "spacing": ex["spacing"],
        "points": points,
        "present": present,
        "image_id": ex["image_id"],
    }
