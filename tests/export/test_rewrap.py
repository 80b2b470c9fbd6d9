"""An export from before serving_batch/serving_encoded gains them, answering as its own graph."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from lmk_tf.errors import ConfigError
from lmk_tf.export.rewrap import add_signatures
from tests.serving.toy_model import ToyLandmarks


@pytest.fixture(scope="module")
def old_export(tmp_path_factory):
    """A toy version with only serving_default and model_info, as version 2 of isbi2015_ceph has."""
    path = str(tmp_path_factory.mktemp("old") / "1")
    module = ToyLandmarks(2, json.dumps({"landmark_names": ["a", "b", "c"]}))
    tf.saved_model.save(module, path, signatures={"serving_default": module.serve, "model_info": module.info})
    os.makedirs(os.path.join(path, "assets.extra"))
    with open(os.path.join(path, "assets.extra", "marker"), "w") as f:
        f.write("kept")
    return path


def test_rewrapped_version_has_the_new_signatures_with_the_same_answers(old_export, tmp_path):
    new = add_signatures(old_export, str(tmp_path / "2"))
    sigs = tf.saved_model.load(new).signatures
    assert set(sigs) == {"serving_default", "model_info", "serving_batch", "serving_encoded"}
    assert open(os.path.join(new, "assets.extra", "marker")).read() == "kept"
    pixels = np.random.default_rng(0).integers(0, 255, (30, 20, 1)).astype(np.uint8)
    spacing = tf.constant([0.5, 2.0])
    want = sigs["serving_default"](image=tf.cast(pixels, tf.float32), spacing=spacing)
    got = sigs["serving_encoded"](image_bytes=tf.io.encode_png(pixels), spacing=spacing)
    batch = sigs["serving_batch"](image=tf.cast(pixels, tf.float32)[None], spacing=spacing[None])
    for key in want:
        np.testing.assert_allclose(got[key], want[key], err_msg=key)
        np.testing.assert_allclose(batch[key][0], want[key], err_msg=key)
    with pytest.raises(ConfigError, match="already exists"):
        add_signatures(old_export, new)
