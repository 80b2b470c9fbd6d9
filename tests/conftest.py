"""Shared test set-up: quiet TensorFlow, tiny trained models, no need of ../shared."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses

import pytest


def tiny_configs(ndim=2):
    """Stage settings small enough to train in seconds on 64x64 images."""
    from lmk_tf.method.config import default_config
    from lmk_tf.method.networks import NetConfig

    net = NetConfig(stem_filters=4, stem_kernel=3, stage_filters=(8, 8), stage_strides=(2, 1), head_filters=8)
    g = dataclasses.replace(default_config("global", ndim), spacing=2.0, patch_size=32, net=net,
                            steps=12, steps_per_epoch=6, batch_size=4)
    local_net = dataclasses.replace(net, stem_stride=1, stage_strides=(2, 2))
    loc = dataclasses.replace(default_config("local", ndim), spacing=1.0, patch_size=16, net=local_net,
                              steps=12, steps_per_epoch=6, batch_size=2)
    return g, loc


def prepare_tiny(out_dir, n=8, seed=3):
    from lmk_tf.data.prepare import prepare_records, synthetic_samples
    from lmk_tf.synthetic import landmark_names

    g, loc = tiny_configs()
    prepare_records(synthetic_samples(2, n, seed, shape=(64, 64)), str(out_dir), split="train",
                    landmark_names=landmark_names(2), global_spacing=g.spacing,
                    local_spacing=loc.spacing, log=None)
    return str(out_dir)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    return prepare_tiny(tmp_path_factory.mktemp("tiny_data"))


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_data, tmp_path_factory):
    """Both stages trained for a few steps: a real, if inaccurate, model."""
    from lmk_tf.training.trainer import train_stage

    model_dir = str(tmp_path_factory.mktemp("tiny_model"))
    for config in tiny_configs():
        train_stage(config, tiny_data, model_dir, verbose=0)
    return model_dir
