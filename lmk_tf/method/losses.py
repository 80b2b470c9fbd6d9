"""Loss of the method: L1 on displacements (masked) + alpha * BCE on probabilities."""

import keras
from keras import ops

from lmk_tf.method.layers import PACKAGE


@keras.saving.register_keras_serializable(package=PACKAGE)
class MaskedDisplacementL1(keras.losses.Loss):
    """Mean absolute error of the encoded displacement over the cells the mask keeps.

    y_true packs (encoded displacement, mask) per landmark as built by
    `lmk_tf.method.targets.make_targets`; y_pred is the displacement head. Both
    flatten to rows of one landmark in one cell in the same order, whichever
    layout the stage uses.
    """

    def __init__(self, ndim, name="masked_displacement_l1", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ndim = int(ndim)

    def call(self, y_true, y_pred):
        t = ops.reshape(y_true, (-1, self.ndim + 1))
        p = ops.reshape(y_pred, (-1, self.ndim))
        mask = t[:, self.ndim]
        err = ops.sum(ops.abs(p - t[:, : self.ndim]), axis=-1)
        loss = ops.sum(err * mask) / (ops.maximum(ops.sum(mask), 1.0) * self.ndim)
        # Shape [1], not a scalar: under tf.distribute Keras divides a loss by the
        # number of replicas (their gradients are summed) but leaves a scalar as
        # it is, which would weigh this term N times against the BCE on N workers.
        return ops.reshape(loss, (1,))

    def get_config(self):
        config = super().get_config()
        config.update({"ndim": self.ndim})
        return config


def stage_losses(ndim: int, alpha: float):
    """(losses, loss_weights) for `model.compile` on the two named heads."""
    losses = {
        "displacement": MaskedDisplacementL1(ndim),
        "classification": keras.losses.BinaryCrossentropy(),
    }
    return losses, {"displacement": 1.0, "classification": float(alpha)}
