"""The networks' logit view: the same weights, the classification head before its sigmoid."""

import keras
import numpy as np
import pytest

from lmk_tf.errors import ModelError
from lmk_tf.method.config import NetConfig
from lmk_tf.method.networks import build_fcn, build_local_net, with_logits

NET = NetConfig(stem_filters=4, stem_kernel=3, stage_filters=(8, 8), stage_strides=(2, 1), head_filters=8)


@pytest.mark.parametrize("kind", ["global", "shared", "specialised"])
def test_logit_view_shares_weights_and_gives_the_sigmoid_inputs(kind):
    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    if kind == "global":
        net, x = build_fcn(2, 3, NET), rng.normal(size=(1, 24, 40, 1))
    else:
        net, x = build_local_net(3, 2, NET, crop_size=8, mode=kind), rng.normal(size=(1, 2, 8, 8, 8, 1))
    view = with_logits(net)
    assert {id(w) for w in view.weights} == {id(w) for w in net.weights}
    out, logits = net(x), view(x)
    np.testing.assert_allclose(np.asarray(logits["displacement"]), np.asarray(out["displacement"]), atol=1e-6)
    prob = 1 / (1 + np.exp(-np.asarray(logits["classification"], np.float64)))
    np.testing.assert_allclose(prob, np.asarray(out["classification"]), atol=1e-6)
    assert np.asarray(logits["classification"]).min() < 0  # logits, not probabilities


def test_logit_view_needs_a_sigmoid_head():
    inputs = keras.Input((None, None, 1))
    head = keras.layers.Conv2D(1, 1, activation="relu")(inputs)
    net = keras.Model(inputs, {"displacement": head, "classification": head}, name="odd")
    with pytest.raises(ModelError, match="'odd' has no sigmoid convolution head"):
        with_logits(net)
