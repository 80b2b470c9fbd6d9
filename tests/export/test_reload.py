"""An export rebuilt as its Keras graph answers as the export does."""

import json
import shutil

import numpy as np
import pytest

from lmk_tf.errors import ModelError
from lmk_tf.export.reload import rebuild, replace_stage
from lmk_tf.serving.local import LocalModel
from tests.conftest import call_graph, tiny_samples


def test_a_rebuilt_export_answers_as_the_export(exported):
    image = tiny_samples(n=1, seed=21)[0][0].load()
    served = LocalModel(exported).predict({"image": np.asarray(image.array, np.float32)[..., None],
                                           "spacing": np.asarray(image.spacing, np.float32)})
    got = call_graph(rebuild(exported), image)
    for key in ("landmarks_index", "confidence", "expected_error_mm"):
        np.testing.assert_allclose(got[key], served[key], rtol=1e-4, atol=1e-3, err_msg=key)


def test_overrides_change_the_inference_settings_only(exported):
    model = rebuild(exported, local_iterations=3, presence_threshold=None)
    info = json.load(open(f"{exported}/assets/model_info.json"))
    assert model.local_iterations == 3 and model.presence_threshold == info["presence_threshold"]
    with pytest.raises(ValueError, match="not inference settings"):
        rebuild(exported, spacing=2.0)


def test_weights_that_do_not_fit_the_settings_are_refused(exported, tmp_path):
    copy = tmp_path / "tiny" / "1"
    shutil.copytree(exported, copy)
    info_path = copy / "assets" / "model_info.json"
    info = json.loads(info_path.read_text())
    info["global_config"]["net"]["head_filters"] *= 2
    info_path.write_text(json.dumps(info))
    with pytest.raises(ModelError, match="do not fit"):
        rebuild(str(copy))


def test_a_stage_is_replaced_and_the_other_stage_and_inference_settings_kept(exported):
    model = rebuild(exported, local_iterations=2)
    local = model.local_net
    config = {**model.global_config, "steps": model.global_config["steps"] + 1}
    swapped = replace_stage(model, "global", model.global_net, config)
    assert swapped.global_config["steps"] == config["steps"] and swapped.local_net is local
    assert swapped.local_config == model.local_config
    for key in ("local_iterations", "presence_threshold", "shift_crops", "normalise_scale", "calibration"):
        assert getattr(swapped, key) == getattr(model, key), key
    with pytest.raises(ValueError, match="'global' or 'local'"):
        replace_stage(model, "middle", local, model.local_config)
