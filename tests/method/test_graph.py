"""The composed GlobalToLocal model: contract, serialization, geometry."""

import keras
import numpy as np

from lmk_tf.method.graph import GlobalToLocal
from lmk_tf.method.model_dir import assemble
from lmk_tf.synthetic import make_sample
from tests.conftest import call_graph


def test_outputs_follow_the_contract(tiny_model_dir):
    image, _, names = make_sample(2, 4, shape=(70, 90), spacing=(0.8, 1.1))
    out = call_graph(assemble(tiny_model_dir), image)
    assert out["landmarks_index"].shape == (len(names), 2)
    np.testing.assert_allclose(out["landmarks_mm"], out["landmarks_index"] * [0.8, 1.1], rtol=1e-6)
    assert out["present"].dtype == bool and out["confidence"].shape == (len(names),)
    assert np.all((out["confidence"] >= 0) & (out["confidence"] <= 1))


def test_keras_save_and_load_round_trip(tiny_model_dir, tmp_path):
    model = assemble(tiny_model_dir)
    image, _, _ = make_sample(2, 5, shape=(64, 64))
    before = call_graph(model, image)
    path = str(tmp_path / "pipeline.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, GlobalToLocal)
    after = call_graph(loaded, image)
    np.testing.assert_allclose(after["landmarks_index"], before["landmarks_index"], atol=1e-4)
    assert loaded.get_config()["landmark_names"] == model.get_config()["landmark_names"]
