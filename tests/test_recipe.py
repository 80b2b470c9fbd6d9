"""The one recipe: work already done is reused only when made with identical settings."""

import dataclasses
import json
import os

import numpy as np
import pytest

from lmk_tf import recipe
from lmk_tf.errors import ConfigError
from lmk_tf.evaluation.metrics import read_errors_csv
from lmk_tf.export.savedmodel import export
from lmk_tf.method.presets import InferenceConfig
from tests.conftest import tiny_preset, tiny_samples


def test_training_writes_the_presets_inference_settings(tiny_model_dir):
    assert InferenceConfig.load(tiny_model_dir) == tiny_preset().inference
    assert os.path.exists(os.path.join(tiny_model_dir, "inference.json"))


def test_identical_stages_are_reused(tiny_data, tiny_model_dir):
    lines = []
    assert recipe.train(tiny_preset(), tiny_data, tiny_model_dir, log=lines.append) == {}
    assert lines == [f"global stage already trained in {tiny_model_dir}",
                     f"local stage already trained in {tiny_model_dir}"]


def test_stages_with_other_settings_are_refused_naming_the_setting(tiny_data, tiny_model_dir):
    with pytest.raises(ConfigError) as e:
        recipe.train(tiny_preset().with_steps(local_steps=13), tiny_data, tiny_model_dir, log=None)
    message = str(e.value)
    assert message.startswith(os.path.join(tiny_model_dir, "local") + " was trained with other settings (")
    assert "steps: 12 -> 13" in message and "delete it" in message
    changed = dataclasses.replace(tiny_preset().global_config.net, head_filters=16)
    with pytest.raises(ConfigError, match=r"global was trained .*net.head_filters: 8 -> 16\)"):
        recipe.train(tiny_preset().with_stages(net=changed), tiny_data, tiny_model_dir, log=None)


def test_a_partly_trained_stage_resumes_only_with_its_settings(tmp_path):
    g = tiny_preset().global_config
    g.save(str(tmp_path / "global"))  # what train_stage writes before its first epoch
    assert recipe.already_trained(g, str(tmp_path / "global")) is False
    with pytest.raises(ConfigError, match="holds a partly trained stage with other settings "
                                          r"\(batch_size: 4 -> 2\)"):
        recipe.already_trained(dataclasses.replace(g, batch_size=2), str(tmp_path / "global"))


def test_prepared_shards_are_reused_only_when_identical(tmp_path):
    preset, data = tiny_preset(), str(tmp_path / "data")
    samples, names = tiny_samples(n=4)
    assert recipe.prepare(preset, data, samples, names, source={"combine": "mean"}, log=None) > 0
    lines = []
    assert recipe.prepare(preset, data, samples, names, source={"combine": "mean"}, log=lines.append) == 0
    assert lines == [f"training data already prepared in {data}"]

    other_spacing = dataclasses.replace(preset, global_config=dataclasses.replace(preset.global_config,
                                                                                  spacing=3.0))
    cases = [
        ((other_spacing, samples, {"combine": "mean"}), "global_spacing: 2.0 -> 3.0"),
        ((preset, samples[:3], {"combine": "mean"}), "train_images: 4 -> 3"),
        ((preset, tiny_samples(n=4, seed=9)[0], {"combine": "mean"}),
         "training images: 4 of the 4 are not among those prepared"),
        ((preset, samples, {"combine": "first"}), "combine: 'mean' -> 'first'"),
    ]
    for (p, s, source), fragment in cases:
        with pytest.raises(ConfigError) as e:
            recipe.prepare(p, data, s, names, source=source, log=None)
        assert str(e.value).startswith(f"{data} was prepared with other settings (")
        assert fragment in str(e.value)


def test_run_trains_exports_and_evaluates_the_export_then_reuses(tmp_path):
    samples, names = tiny_samples(n=6, seed=4)
    held_out, _ = tiny_samples(n=2, seed=5)
    preset = tiny_preset().with_inference(local_iterations=2)
    args = dict(evaluate_on=held_out, overlays=1, log=None)
    first = recipe.run(preset, str(tmp_path), samples, names, export_to=str(tmp_path / "saved" / "m"), **args)
    assert set(first.train_seconds) == {"global", "local"} and first.prepare_seconds > 0
    assert first.saved_model == str(tmp_path / "saved" / "m" / "1")
    info = json.load(open(os.path.join(first.saved_model, "assets", "model_info.json")))
    assert info["local_iterations"] == 2  # the preset's, through inference.json
    assert first.summary["n_images"] == 2

    again = recipe.run(preset, str(tmp_path), samples, names, **args)
    assert again.train_seconds == {} and again.prepare_seconds == 0 and again.saved_model is None
    # The temporary export evaluated the second time answers as the kept one did.
    np.testing.assert_allclose(again.summary["overall"]["mre"], first.summary["overall"]["mre"], rtol=1e-6)


def test_evaluate_runs_the_exported_graph(tiny_model_dir, tmp_path):
    samples, names = tiny_samples(n=2, seed=6)
    via_stages = recipe.evaluate(tiny_model_dir, samples, names, str(tmp_path / "a"), overlays=0, log=None)
    saved = export(tiny_model_dir, str(tmp_path / "saved" / "tiny"))
    via_export = recipe.evaluate_saved_model(saved, samples, names, str(tmp_path / "b"), overlays=0, log=None)
    _, _, a = read_errors_csv(str(tmp_path / "a" / "errors.csv"))
    _, _, b = read_errors_csv(str(tmp_path / "b" / "errors.csv"))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(via_stages["overall"]["mre"], via_export["overall"]["mre"])


def test_run_calibrates_on_validation_images_before_the_export(tmp_path):
    samples, names = tiny_samples(n=6, seed=4)
    validation, _ = tiny_samples(n=6, seed=7)
    preset = tiny_preset().with_inference(presence_threshold=0.0)
    result = recipe.run(preset, str(tmp_path), samples, names, export_to=str(tmp_path / "saved" / "m"),
                        calibrate_on=validation, log=None)
    assert "of 6 validation images" in result.calibration["fitted_on"]
    info = json.load(open(os.path.join(result.saved_model, "assets", "model_info.json")))
    assert info["calibration"] == result.calibration


def test_a_local_member_trains_beside_the_stages_and_joins_the_assembled_graph(tiny_data, tiny_model_dir, tmp_path):
    import shutil

    from lmk_tf.method.model_dir import assemble

    model_dir = str(tmp_path / "model")
    shutil.copytree(tiny_model_dir, model_dir)
    base = tiny_preset()
    preset = dataclasses.replace(base, local_members=(dataclasses.replace(base.local_config, seed=1),))
    lines = []
    seconds = recipe.train(preset, tiny_data, model_dir, log=lines.append)
    assert list(seconds) == ["local-2"]  # the first two were reused
    assert lines[-1].startswith("local-2 stage trained in ")
    model = assemble(model_dir)
    assert [c["seed"] for c in model.extra_local_configs] == [1]
    assert recipe.train(preset, tiny_data, model_dir, log=None) == {}


def test_a_local_member_at_another_spacing_trains_on_shards_of_its_own(tiny_model_dir, tmp_path):
    import shutil

    from lmk_tf.method.model_dir import assemble
    from lmk_tf.synthetic import make_sample
    from tests.conftest import call_graph

    samples, names = tiny_samples()
    base = tiny_preset()
    coarser = dataclasses.replace(base.local_config, seed=1, spacing=base.local_config.spacing * 1.5)
    preset = dataclasses.replace(base, local_members=(coarser,))
    data_dir = str(tmp_path / "data")
    recipe.prepare(preset, data_dir, samples, names, log=None)
    member_data = recipe.stage_data_dir(preset, data_dir, coarser)
    assert member_data != data_dir == recipe.stage_data_dir(preset, data_dir, base.local_config)
    with open(os.path.join(member_data, "dataset.json")) as f:
        assert json.load(f)["local_spacing"] == pytest.approx(coarser.spacing)
    model_dir = str(tmp_path / "model")
    shutil.copytree(tiny_model_dir, model_dir)
    assert list(recipe.train(preset, data_dir, model_dir, log=None)) == ["local-2"]
    model = assemble(model_dir)
    assert [c["spacing"] for c in model.extra_local_configs] == [pytest.approx(coarser.spacing)]
    image, _, _ = make_sample(2, 4, shape=(64, 64))
    assert np.all(np.isfinite(call_graph(model, image)["landmarks_index"]))
