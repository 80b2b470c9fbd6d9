"""The stage loss against hand computations."""

import keras
import numpy as np
import pytest

from lmk_tf.method.losses import MaskedDisplacementL1, stage_losses

# One image, a 1 x 2 grid, two landmarks, 2D: rows (cell, landmark) of
# y_true = (dy, dx, mask) and y_pred = (dy, dx).
TRUE = np.array([[[[1.0, 2.0, 1.0, 0.0, 0.0, 0.0],       # cell 0: l0 kept, l1 masked out
                   [-1.0, 3.0, 1.0, 2.0, 2.0, 1.0]]]])   # cell 1: both kept
PRED = np.array([[[[1.5, 1.0, 9.0, 9.0],
                   [-1.0, 0.0, 2.25, 1.5]]]])


def test_masked_l1_by_hand():
    # Kept rows: |1.5-1| + |1-2| = 1.5, |-1+1| + |0-3| = 3, |2.25-2| + |1.5-2| = 0.75;
    # the masked row (error 18) does not count. (1.5 + 3 + 0.75) / (3 rows * 2 axes).
    loss = MaskedDisplacementL1(2)(TRUE.astype("float32"), PRED.astype("float32"))
    assert float(loss) == pytest.approx(5.25 / 6, abs=1e-6)


def test_masked_l1_pools_the_rows_of_a_batch():
    # A second image with one kept row, error |0-1| + |0-3| = 4: (5.25 + 4) / (4 rows * 2 axes),
    # not the mean of the two images' losses (0.875 and 2).
    true2 = np.zeros_like(TRUE)
    true2[0, 0, 1, :3] = [1.0, 3.0, 1.0]
    y_true = np.concatenate([TRUE, true2]).astype("float32")
    y_pred = np.concatenate([PRED, np.zeros_like(PRED)]).astype("float32")
    assert float(MaskedDisplacementL1(2)(y_true, y_pred)) == pytest.approx(9.25 / 8, abs=1e-6)


def test_masked_l1_with_nothing_kept_is_zero():
    y_true = TRUE.copy()
    y_true[..., 2::3] = 0.0
    assert float(MaskedDisplacementL1(2)(y_true.astype("float32"), PRED.astype("float32"))) == 0.0


def test_masked_l1_3d_local_layout():
    # The local stage's layout [B, L, *grid, ndim]: rows still pair up.
    y_true = np.zeros((1, 2, 1, 1, 1, 4), "float32")
    y_true[0, 0, 0, 0, 0] = [1.0, -2.0, 0.5, 1.0]
    y_true[0, 1, 0, 0, 0] = [7.0, 7.0, 7.0, 0.0]
    y_pred = np.zeros((1, 2, 1, 1, 1, 3), "float32")
    # Only landmark 0 counts: (1 + 2 + 0.5) / (1 row * 3 axes).
    assert float(MaskedDisplacementL1(3)(y_true, y_pred)) == pytest.approx(3.5 / 3, abs=1e-6)


def test_stage_losses_weigh_classification_by_alpha():
    losses, weights = stage_losses(2, 20.0)
    assert isinstance(losses["displacement"], MaskedDisplacementL1)
    assert isinstance(losses["classification"], keras.losses.BinaryCrossentropy)
    assert weights == {"displacement": 1.0, "classification": 20.0}
    clone = MaskedDisplacementL1.from_config(losses["displacement"].get_config())
    assert clone.ndim == 2
