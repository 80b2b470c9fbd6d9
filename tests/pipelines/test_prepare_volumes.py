"""lmk-prepare on volumes with Slicer landmark files, then lmk-train with a volume preset."""

import json
import os

import numpy as np
import pytest

from lmk_tf.image import Image
from lmk_tf.io import write_image
from lmk_tf.io.landmarks import Landmarks
from lmk_tf.io.slicer_markups import write_mrk_json
from tests.pipelines.test_method_commands import run

NAMES = ["nasion", "sella"]


def _write_case(images, marks, name, seed, index, names=NAMES):
    rng = np.random.default_rng(seed)
    a = rng.uniform(-0.5, 0.5)
    direction = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    image = Image((rng.random((10, 24, 24)) * 1000).astype(np.int16), (2.0, 0.8, 0.8),
                  tuple(rng.uniform(-50, 50, 3)), direction)
    write_image(image, os.path.join(images, f"{name}.nii.gz"))
    write_mrk_json(os.path.join(marks, f"{name}.mrk.json"), Landmarks(names, index), image=image,
                   coordinate_system="RAS" if seed % 2 else "LPS")


@pytest.fixture
def volume_dirs(tmp_path):
    images, marks = str(tmp_path / "images"), str(tmp_path / "marks")
    os.makedirs(images)
    os.makedirs(marks)
    for i in range(3):
        _write_case(images, marks, f"case{i}", i, [[3.0 + i, 10.0, 12.5], [6.0, 5.5 + i, 20.0]])
    return images, marks


@pytest.mark.slow
def test_prepare_volumes_then_train_with_the_ct_preset(tmp_path, volume_dirs):
    images, marks = volume_dirs
    data, model = str(tmp_path / "data"), str(tmp_path / "model")
    p = run("prepare", f"--images={images}", f"--landmarks={marks}", "--preset=ct", f"--output={data}")
    assert p.returncode == 0, p.stderr[-2000:]
    info = json.load(open(os.path.join(data, "dataset.json")))
    assert (info["ndim"], info["landmark_names"], info["counts"]) == (3, NAMES, {"train": 3})
    assert (info["global_spacing"], info["local_spacing"]) == (2.0, 0.75)
    p = run("train", "--stage=global", f"--data={data}", f"--model_dir={model}", "--preset=ct", "--steps=1",
            "--batch_size=1", "--steps_per_epoch=1")
    assert p.returncode == 0, p.stderr[-2000:]
    config = json.load(open(os.path.join(model, "global", "config.json")))
    assert (config["spacing"], config["patch_size"], config["alpha"]) == (2.0, 64, 8.0)
    assert json.load(open(os.path.join(model, "inference.json"))) == {"presence_threshold": 0.5,
                                                                     "local_iterations": 3, "shift_crops": 0,
                                                                     "normalise_scale": False, "global_shifts": 0,
                                                                     "member_weighting": "mean"}


def _one_error_line(p):
    assert p.returncode == 2, p.stdout + p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in p.stderr, p.stderr
    return lines[0]


@pytest.mark.slow
def test_prepare_refuses_other_names_and_points_outside(tmp_path, volume_dirs):
    images, marks = volume_dirs
    _write_case(images, marks, "case9", 9, [[3.0, 10.0, 30.0], [6.0, 5.5, 20.0]])  # column 30 of 24
    p = run("prepare", f"--images={images}", f"--landmarks={marks}", f"--output={tmp_path / 'a'}")
    assert "case9.mrk.json: landmark 'nasion' lies outside" in _one_error_line(p)
    p = run("prepare", f"--images={images}", f"--landmarks={marks}", "--allow_outside", "--preset=synthetic3d",
            f"--output={tmp_path / 'b'}")
    assert p.returncode == 0, p.stderr[-2000:]
    _write_case(images, marks, "case9", 9, [[3.0, 10.0, 3.0], [6.0, 5.5, 20.0]], names=["nasion", "menton"])
    p = run("prepare", f"--images={images}", f"--landmarks={marks}", f"--output={tmp_path / 'c'}")
    assert "case9.mrk.json: its landmarks differ from those of" in _one_error_line(p)
