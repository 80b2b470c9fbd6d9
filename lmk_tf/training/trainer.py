"""Training one stage: model, data, checkpoints that survive interruption, logs.

Layout of a model directory:

    <model_dir>/dataset.json         copied from the prepared data (names, ndim)
    <model_dir>/<stage>/config.json  the resolved StageConfig
    <model_dir>/<stage>/backup/      last completed epoch (resume after a kill)
    <model_dir>/<stage>/logs/        TensorBoard
    <model_dir>/<stage>/model.keras  the trained network, written when done
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import sys
import time

import keras
import tensorflow as tf

from lmk_tf.data.pipeline import training_dataset
from lmk_tf.errors import ConfigError, ModelError
from lmk_tf.models.networks import build_fcn, build_local_net
from lmk_tf.training.config import StageConfig
from lmk_tf.training.losses import stage_losses

STRATEGIES = ("default", "mirrored", "multi_worker")
MIN_FREE_BYTES = 200 * 2**20


def load_dataset_info(data_dir: str) -> dict:
    path = os.path.join(data_dir, "dataset.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: not found; run lmk-prepare to create the training data") from None
    except json.JSONDecodeError as e:
        raise ConfigError(f"{path}: not valid JSON ({e})") from None


def stage_files(data_dir: str, stage: str, split: str = "train") -> list[str]:
    files = sorted(glob.glob(os.path.join(data_dir, f"{split}-{stage}-*.tfrecord")))
    if not files:
        raise ConfigError(f"{data_dir}: no {split}-{stage}-*.tfrecord shards; run lmk-prepare first")
    return files


def make_strategy(name: str):
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy=multi_worker needs the TF_CONFIG environment variable")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"strategy must be one of {STRATEGIES}, got {name!r}")


def build_stage_model(config: StageConfig, num_landmarks: int):
    if config.stage == "global":
        return build_fcn(config.ndim, num_landmarks, config.net, name="global_net")
    return build_local_net(
        config.ndim, num_landmarks, config.net, crop_size=config.patch_size, mode=config.local_mode
    )


def check_writable(directory: str):
    """Fails before training, not an hour in, when checkpoints cannot be written."""
    try:
        os.makedirs(directory, exist_ok=True)
        probe = os.path.join(directory, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise ConfigError(f"{directory}: model directory is not writable ({e.strerror})") from None
    free = shutil.disk_usage(directory).free
    if free < MIN_FREE_BYTES:
        raise ConfigError(
            f"{directory}: only {free / 2**20:.0f} MB free; training needs at least "
            f"{MIN_FREE_BYTES / 2**20:.0f} MB for checkpoints"
        )


class _ProgressLine(keras.callbacks.Callback):
    """One readable line per epoch when output is not a terminal (logs, CI, make demo)."""

    def __init__(self, stage, epochs, steps_per_epoch):
        super().__init__()
        self.stage, self.epochs, self.steps_per_epoch = stage, epochs, steps_per_epoch
        self.t0 = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = " ".join(f"{k}={v:.4f}" for k, v in sorted(logs.items()) if k.endswith("loss"))
        print(
            f"[{self.stage}] epoch {epoch + 1}/{self.epochs} step {(epoch + 1) * self.steps_per_epoch} "
            f"{parts} ({time.time() - self.t0:.0f}s)",
            flush=True,
        )


def train_stage(config: StageConfig, data_dir: str, model_dir: str, *, strategy="default", verbose=None):
    """Trains (or resumes training of) one stage; returns the trained Keras model."""
    config.validate()
    info = load_dataset_info(data_dir)
    if int(info["ndim"]) != config.ndim:
        raise ConfigError(f"data in {data_dir} is {info['ndim']}D but the stage config says ndim={config.ndim}")
    prepared = float(info[f"{config.stage}_spacing"])
    if abs(prepared - config.spacing) > 1e-6:
        raise ConfigError(
            f"data in {data_dir} was prepared at {config.stage} spacing {prepared} mm but the "
            f"stage config asks for {config.spacing} mm; rerun lmk-prepare with "
            f"--{config.stage}_spacing={config.spacing}"
        )
    num_landmarks = len(info["landmark_names"])
    files = stage_files(data_dir, config.stage)
    stage_dir = os.path.join(model_dir, config.stage)
    check_writable(stage_dir)
    with open(os.path.join(model_dir, "dataset.json"), "w") as f:
        json.dump(info, f, indent=2)
    config.save(stage_dir)

    keras.utils.set_random_seed(config.seed)
    with make_strategy(strategy).scope():
        model = build_stage_model(config, num_landmarks)
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.steps, alpha=0.05
        )
        losses, weights = stage_losses(config.ndim, config.alpha)
        model.compile(
            optimizer=keras.optimizers.Adam(schedule, amsgrad=True), loss=losses, loss_weights=weights
        )
    dataset = training_dataset(files, config, num_landmarks)
    epochs = math.ceil(config.steps / config.steps_per_epoch)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 0
    callbacks = [
        # double_checkpoint keeps the previous backup, so a checkpoint truncated
        # by a kill mid-write falls back to the one before it.
        keras.callbacks.BackupAndRestore(
            os.path.join(stage_dir, "backup"), save_freq="epoch", double_checkpoint=True,
            delete_checkpoint=False,
        ),
        keras.callbacks.TensorBoard(os.path.join(stage_dir, "logs"), write_graph=False),
    ]
    if not verbose:
        callbacks.append(_ProgressLine(config.stage, epochs, config.steps_per_epoch))
    model.fit(dataset, epochs=epochs, steps_per_epoch=config.steps_per_epoch,
              callbacks=callbacks, verbose=verbose)
    save_model_atomic(model, os.path.join(stage_dir, "model.keras"))
    return model


def save_model_atomic(model, path: str):
    tmp = path + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)


def load_stage(model_dir: str, stage: str):
    """(config, keras model) of a trained stage."""
    stage_dir = os.path.join(model_dir, stage)
    config = StageConfig.load(stage_dir)
    path = os.path.join(stage_dir, "model.keras")
    if not os.path.exists(path):
        raise ModelError(f"{path}: no trained {stage} model; run lmk-train --stage={stage} first")
    try:
        model = keras.saving.load_model(path, compile=False)
    except Exception as e:  # noqa: BLE001 - any load failure means a broken file
        raise ModelError(f"{path}: cannot load the trained {stage} model ({e})") from None
    return config, model
