"""Presets: every setting a figure depends on, the inference ones included."""

import dataclasses
import os
import subprocess
import sys

import pytest

from lmk_tf.errors import ConfigError
from lmk_tf.method.presets import INFERENCE_FILE, InferenceConfig, default_config, get_preset

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("name,ndim,steps,presence,iterations,shifts,scaled,global_shifts", [
    ("synthetic", 2, (1500, 2000), 0.5, 1, 0, False, 0),  # docs/benchmarks.md, 2D column
    ("synthetic", 3, (1000, 800), 0.5, 6, 0, False, 0),  # 3D column: the local stage runs 6 times
    # docs/isbi2015.md: every landmark reported; no shifted sub-images since version 7 (the
    # ensemble's disagreement says most of what they said, in half the time); the local stage at
    # the head's scale; since version 8 the global estimate is the mean of 4 half-cell-shifted passes
    ("ceph", 2, (8000, 8000), 0.0, 1, 0, True, 3),
    ("ct", 3, (4000, 4000), 0.5, 3, 0, False, 0),
    ("mr_head", 3, (4000, 4000), 0.5, 3, 0, False, 0),
    ("synthetic3d", 3, (1500, 2000), 0.5, 6, 0, False, 0),  # benchmarks/volumes.py, docs/volumes.md
])
def test_presets_carry_the_figures_settings(name, ndim, steps, presence, iterations, shifts, scaled, global_shifts):
    preset = get_preset(name, ndim)
    assert (preset.global_config.steps, preset.local_config.steps) == steps
    assert preset.inference == InferenceConfig(presence_threshold=presence, local_iterations=iterations,
                                               shift_crops=shifts, normalise_scale=scaled,
                                               global_shifts=global_shifts)
    assert [c.stage for c in preset.stages] == ["global", "local"]
    assert {c.ndim for c in preset.stages} == {ndim} and preset.ndim == ndim
    assert default_config("local", ndim, name) == preset.local_config


def test_presets_are_fresh_values():
    a = get_preset("synthetic", 2)
    a.global_config.steps = 1
    assert get_preset("synthetic", 2).global_config.steps == 1500


@pytest.mark.parametrize("name,spacings,alpha", [
    ("ct", (2.0, 0.75), 8.0),  # the paper's CT weight
    ("mr_head", (2.0, 1.0), 2.0),  # its MR weight
    ("synthetic3d", (3.0, 1.0), 8.0),
])
def test_volume_presets_spacings_and_weights(name, spacings, alpha):
    preset = get_preset(name, 3)
    assert (preset.global_config.spacing, preset.local_config.spacing) == spacings
    assert {c.alpha for c in preset.stages} == {alpha}
    # The local sub-image covers the global stage's cell several times over.
    local_mm = preset.local_config.patch_size * preset.local_config.spacing
    assert local_mm >= 18 and preset.local_config.local_offset_mm < local_mm / 2


@pytest.mark.parametrize("name,ndim,fragment", [
    ("ceph", 3, "2D cephalograms, not 3D"),
    ("ct", 2, "preset 'ct' is for 3D volumes, not 2D images"),
    ("mr_head", 2, "preset 'mr_head' is for 3D volumes"),
    ("mri", 2, "preset must be one of"),
    ("synthetic", 4, "ndim must be 2 or 3, got 4"),
])
def test_unknown_presets_are_named(name, ndim, fragment):
    with pytest.raises(ConfigError, match=fragment):
        get_preset(name, ndim)


def test_with_steps_keeps_epochs_within_the_steps():
    preset = get_preset("synthetic", 3).with_steps(global_steps=20)
    assert (preset.global_config.steps, preset.global_config.steps_per_epoch) == (20, 20)
    assert preset.local_config == get_preset("synthetic", 3).local_config
    assert get_preset("synthetic", 3).with_steps(global_steps=200).global_config.steps_per_epoch == 50


def test_with_stages_and_with_inference():
    preset = get_preset("synthetic", 2).with_stages(seed=7).with_inference(local_iterations=3,
                                                                           presence_threshold=None)
    assert [c.seed for c in preset.stages] == [7, 7]
    assert preset.inference == InferenceConfig(presence_threshold=0.5, local_iterations=3)
    with pytest.raises(ConfigError, match="local_iterations must be an integer >= 1, got 0"):
        preset.with_inference(local_iterations=0)


def test_validate_names_a_stage_in_the_wrong_place():
    preset = get_preset("synthetic", 2)
    swapped = dataclasses.replace(preset, global_config=preset.local_config)
    with pytest.raises(ConfigError, match="its global stage says stage='local'"):
        swapped.validate()


def test_inference_settings_round_trip_and_default(tmp_path):
    assert InferenceConfig.load(str(tmp_path)) == InferenceConfig()  # trained before they were written
    InferenceConfig(presence_threshold=0.0, local_iterations=6).save(str(tmp_path))
    assert InferenceConfig.load(str(tmp_path)) == InferenceConfig(0.0, 6)


@pytest.mark.parametrize("text,fragment", [
    ("{", "not valid JSON"),
    ('{"local_iterations": 2, "crop": 3}', r"unknown inference settings \['crop'\]"),
    ('{"presence_threshold": -1}', "presence_threshold must be >= 0, got -1"),
    ('{"global_shifts": 4}', "global_shifts must be 0, 1, 2 or 3, got 4"),
    ('{"member_weighting": "median"}', "member_weighting must be one of mean, inverse_variance, got 'median'"),
])
def test_bad_inference_file_is_named(tmp_path, text, fragment):
    (tmp_path / INFERENCE_FILE).write_text(text)
    with pytest.raises(ConfigError, match=fragment) as e:
        InferenceConfig.load(str(tmp_path))
    assert str(e.value).startswith(str(tmp_path / INFERENCE_FILE) + ": ")


def test_presets_import_nothing_heavy():
    code = ("import sys, lmk_tf.method.presets; "
            "print(sorted(m for m in ('tensorflow', 'keras', 'numpy') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "[]"


def test_a_local_member_must_cut_sub_images_of_the_local_stages_size_at_any_spacing():
    preset = get_preset("synthetic", 2)
    member = dataclasses.replace(preset.local_config, seed=1, steps=100)
    coarser = dataclasses.replace(member, spacing=preset.local_config.spacing * 2)
    ok = dataclasses.replace(preset, local_members=(member, coarser)).validate()
    assert ok.member_stages == [("local-2", member), ("local-3", coarser)]
    wider = dataclasses.replace(member, patch_size=preset.local_config.patch_size * 2)
    with pytest.raises(ConfigError, match="local member local-2 must cut sub-images of the local stage's size; "
                                          "its patch_size differ"):
        dataclasses.replace(preset, local_members=(wider,)).validate()
