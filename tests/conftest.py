"""Shared test set-up: quiet TensorFlow, tiny trained models, no need of ../shared."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_in_repo(*args, timeout=600):
    """`python *args` in a fresh process at the repository's root (scripts define absl flags)."""
    return subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def tiny_configs(ndim=2):
    """Stage settings small enough to train in seconds on 64x64 images."""
    from lmk_tf.method.networks import NetConfig
    from lmk_tf.method.presets import default_config

    net = NetConfig(stem_filters=4, stem_kernel=3, stage_filters=(8, 8), stage_strides=(2, 1), head_filters=8)
    g = dataclasses.replace(default_config("global", ndim), spacing=2.0, patch_size=32, net=net,
                            steps=12, steps_per_epoch=6, batch_size=4)
    local_net = dataclasses.replace(net, stem_stride=1, stage_strides=(2, 2))
    loc = dataclasses.replace(default_config("local", ndim), spacing=1.0, patch_size=16, net=local_net,
                              steps=12, steps_per_epoch=6, batch_size=2)
    return g, loc


def tiny_preset(ndim=2):
    """tiny_configs as a preset, with the default inference settings."""
    from lmk_tf.method.presets import InferenceConfig, Preset

    return Preset("tiny", *tiny_configs(ndim), InferenceConfig())


def tiny_samples(n=8, seed=3):
    from lmk_tf.data.sources import synthetic_source

    return synthetic_source(2, n, seed, shape=(64, 64))


def prepare_tiny(out_dir, n=8, seed=3):
    from lmk_tf import recipe

    samples, names = tiny_samples(n, seed)
    recipe.prepare(tiny_preset(), str(out_dir), samples, names, log=None)
    return str(out_dir)


def call_graph(model, image):
    """The composed Keras graph on one Image, eagerly: name -> array."""
    import numpy as np

    out = model({"image": np.asarray(image.array, np.float32)[..., None],
                 "spacing": np.asarray(image.spacing, np.float32)})
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return prepare_tiny(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_data, tmp_path_factory):
    """Both stages trained for a few steps by the recipe: a real, if inaccurate, model."""
    from lmk_tf import recipe

    model_dir = str(tmp_path_factory.mktemp("tiny_model"))
    recipe.train(tiny_preset(), tiny_data, model_dir, log=None)
    return model_dir


@pytest.fixture(scope="session")
def isbi_like(tmp_path_factory):
    """A tiny stand-in for ../shared/data/isbi2015, which a fresh clone has not: synthetic
    pictures laid out as the challenge's (images/ + senior.csv + junior.csv)."""
    import numpy as np
    from PIL import Image as PILImage

    from lmk_tf.io.landmarks import Landmarks, write_landmark_table
    from lmk_tf.synthetic import make_sample

    root = tmp_path_factory.mktemp("isbi2015")
    (root / "images").mkdir()
    senior, junior = {}, {}
    for i in range(8):
        image, points, names = make_sample(2, seed=i, shape=(160, 128), spacing=(1.0, 1.0))
        a = image.array
        pixels = np.uint8(np.clip(255 * (a - a.min()) / (np.ptp(a) or 1), 0, 255))
        PILImage.fromarray(pixels).save(root / "images" / f"{i:03d}.png")
        senior[f"{i:03d}.png"] = Landmarks(names, points)
        junior[f"{i:03d}.png"] = Landmarks(names, points + 1.0)  # the second doctor disagrees by 1 px
    write_landmark_table(root / "senior.csv", senior)
    write_landmark_table(root / "junior.csv", junior)
    return root
