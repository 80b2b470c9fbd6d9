"""An export rebuilt as its Keras graph answers as the export does."""

import json
import shutil

import numpy as np
import pytest

from lmk_tf.errors import ModelError
from lmk_tf.export.reload import add_local_member, rebuild, replace_stage
from lmk_tf.export.savedmodel import export_pipeline
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
    model = rebuild(exported, local_iterations=2, global_shifts=3)
    local = model.local_net
    config = {**model.global_config, "steps": model.global_config["steps"] + 1}
    swapped = replace_stage(model, "global", model.global_net, config)
    assert swapped.global_config["steps"] == config["steps"] and swapped.local_net is local
    assert swapped.local_config == model.local_config
    assert swapped.global_shifts == 3
    for key in ("local_iterations", "presence_threshold", "shift_crops", "normalise_scale", "calibration"):
        assert getattr(swapped, key) == getattr(model, key), key
    with pytest.raises(ValueError, match="'global' or 'local'"):
        replace_stage(model, "middle", local, model.local_config)


def test_a_local_member_joins_and_the_ensemble_survives_export_and_rebuild(exported, tmp_path):
    from lmk_tf.method.config import StageConfig
    from lmk_tf.training.trainer import build_stage_model

    model = rebuild(exported)
    config = {**model.local_config, "seed": 9}
    other = build_stage_model(StageConfig.from_dict(config), len(model.landmark_names))
    other.set_weights([w * 0.9 for w in model.local_net.get_weights()])
    ensemble = add_local_member(model, other, config)
    assert ensemble.local_net is model.local_net and ensemble.extra_local_configs == [config]
    assert ensemble.calibration == model.calibration and ensemble.shift_crops == model.shift_crops
    path = export_pipeline(ensemble, str(tmp_path / "tiny"), version=1)
    info = json.load(open(f"{path}/assets/model_info.json"))
    assert info["extra_local_configs"][0]["seed"] == 9
    image = tiny_samples(n=1, seed=21)[0][0].load()
    served = LocalModel(path).predict({"image": np.asarray(image.array, np.float32)[..., None],
                                       "spacing": np.asarray(image.spacing, np.float32)})
    again = call_graph(rebuild(path), image)
    direct = call_graph(ensemble, image)
    for key in ("landmarks_index", "expected_error_mm"):
        np.testing.assert_allclose(again[key], served[key], rtol=1e-4, atol=1e-3, err_msg=key)
        np.testing.assert_allclose(direct[key], served[key], rtol=1e-4, atol=1e-3, err_msg=key)
    assert np.all(again["ensemble_mm"] > 0)
    # The members weighed by their spreads: the setting is exported, and rebuilt from the export.
    assert info["member_weighting"] == "mean"
    weighed = export_pipeline(rebuild(path, member_weighting="inverse_variance"), str(tmp_path / "tiny"), version=2)
    assert json.load(open(f"{weighed}/assets/model_info.json"))["member_weighting"] == "inverse_variance"
    assert rebuild(weighed).member_weighting == "inverse_variance"
    served = LocalModel(weighed).predict({"image": np.asarray(image.array, np.float32)[..., None],
                                          "spacing": np.asarray(image.spacing, np.float32)})
    np.testing.assert_allclose(call_graph(rebuild(weighed), image)["landmarks_index"], served["landmarks_index"],
                               rtol=1e-4, atol=1e-3)
