"""How large the head in an image is, from the global stage's landmarks, against the training heads.

Magnification and patient size make the same anatomy 0.7-1.4x as large in one
image as in another. The local stage is most accurate at the size it mostly
trained on (held-out folds: 0.75x heads 1.45-1.52 mm, 1.15-1.24 at their own
size). With `normalise_scale`, the graph measures the head's scale s as the
median, over all landmark pairs, of their distance in the global estimate
over their mean distance in the training images, and runs the local stage at
s times its spacing: it sees the anatomy at the training size. The median of
171 pairs (19 landmarks) shrugs off a few misplaced global estimates.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

# Outside this, the estimate is not a head's scale but a failed global stage.
SCALE_RANGE = (0.5, 2.0)


def pair_indices(num_landmarks: int) -> tuple[np.ndarray, np.ndarray]:
    return np.triu_indices(num_landmarks, 1)


def reference_distances(points_mm) -> list[float]:
    """Mean distance (mm) of every landmark pair over the training images (NaN points skipped).

    points_mm: [N, L, ndim]. Returns the L(L-1)/2 means, pairs in `pair_indices` order.
    """
    points = np.asarray(points_mm, np.float64)
    if points.ndim != 3 or points.shape[1] < 3:
        raise ValueError(f"points must be [N, L >= 3, ndim], got shape {points.shape}")
    a, b = pair_indices(points.shape[1])
    d = np.linalg.norm(points[:, a] - points[:, b], axis=-1)
    seen = np.isfinite(d).sum(axis=0)
    if (seen == 0).any():
        raise ValueError("a landmark pair is never seen together in the training images")
    return [float(v) for v in np.nanmean(d, axis=0)]


def head_scale(index, spacing, reference):
    """In the graph: the scale of the head whose landmark estimates are `index` [L, ndim] (pixels).

    spacing [ndim] mm per pixel; reference [L(L-1)/2] mm. Returns a scalar.
    """
    mm = tf.cast(index, tf.float32) * tf.cast(spacing, tf.float32)
    a, b = pair_indices(int(index.shape[0]))
    d = tf.norm(tf.gather(mm, a) - tf.gather(mm, b), axis=-1)
    ratios = d / tf.constant(reference, tf.float32)
    ratios = tf.where(tf.math.is_finite(ratios), ratios, 1.0)
    median = tf.sort(ratios)[len(a) // 2]
    return tf.clip_by_value(median, *SCALE_RANGE)
