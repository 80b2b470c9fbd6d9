"""Shared test set-up: quiet TensorFlow, tiny trained models, no need of ../shared."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses

import pytest


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
