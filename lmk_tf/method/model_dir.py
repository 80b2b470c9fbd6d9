"""A trained model directory: its dataset info, its stages, and the composed graph.

Layout (written by lmk-prepare and lmk-train):

    <model_dir>/dataset.json         landmark names, ndim, spacings of the prepared data
    <model_dir>/inference.json       the preset's inference settings (presets.InferenceConfig)
    <model_dir>/<stage>/config.json  the resolved StageConfig of that stage
    <model_dir>/<stage>/model.keras  the trained network
    <model_dir>/local-<k>/           the k-th local net of an ensemble (k >= 2), as <stage>
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os

import keras

from lmk_tf.errors import ConfigError, ModelError
from lmk_tf.method import networks
from lmk_tf.method.config import StageConfig
from lmk_tf.method.graph import GlobalToLocal
from lmk_tf.method.presets import InferenceConfig


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


def member_stage_names(model_dir: str) -> list[str]:
    """The directories of the local nets after the first (local-2, local-3, ...), in order."""
    names = [os.path.basename(p) for p in glob.glob(os.path.join(model_dir, "local-*"))]
    numbered = sorted((int(n.split("-", 1)[1]), n) for n in names if n.split("-", 1)[1].isdigit())
    return [n for _, n in numbered]


def load_stage(model_dir: str, stage: str):
    """(config, keras model) of a trained stage (or a local ensemble member's directory name)."""
    stage_dir = os.path.join(model_dir, stage)
    config = StageConfig.load(stage_dir)
    path = os.path.join(stage_dir, "model.keras")
    if not os.path.exists(path):
        raise ModelError(f"{path}: no trained {stage} model; run lmk-train --stage={config.stage} first")
    try:
        # The local nets use the package's own layers; naming them here makes the load
        # independent of which modules happen to be imported already.
        model = keras.saving.load_model(path, compile=False, custom_objects=networks.CUSTOM_OBJECTS)
    except Exception as e:
        raise ModelError(f"{path}: cannot load the trained {stage} model ({e})") from None
    return config, model


def assemble(model_dir: str, *, presence_threshold: float | None = None,
             local_iterations: int | None = None, shift_crops: int | None = None,
             calibration: dict | None = None, normalise_scale: bool | None = None,
             reference_distances_mm=None, shape_weights=None, global_shifts: int | None = None,
             member_weighting: str | None = None) -> GlobalToLocal:
    """Composes the trained global and local stages found in `model_dir`.

    The inference settings are those training wrote to inference.json; a value
    given here overrides its setting. `calibration` maps the uncertainty
    signals to mm (`uncertainty.fit_calibration`); None: uncalibrated.
    `reference_distances_mm` (the training images' landmark pair distances)
    defaults to dataset.json's, which lmk-prepare writes; so do `shape_weights`
    (the shape_mm signal; a dataset prepared before they existed has none: the signal is 0).
    """
    info = load_dataset_info(model_dir)
    inference = InferenceConfig.load(model_dir).override(
        presence_threshold=presence_threshold, local_iterations=local_iterations, shift_crops=shift_crops,
        normalise_scale=normalise_scale, global_shifts=global_shifts, member_weighting=member_weighting)
    reference = reference_distances_mm if reference_distances_mm is not None else info.get("reference_distances_mm")
    if inference.normalise_scale and reference is None:
        raise ConfigError(f"{model_dir}: normalise_scale needs the training images' landmark distances "
                          "(reference_distances_mm), which its dataset.json lacks: prepare the data again")
    g_config, g_net = load_stage(model_dir, "global")
    l_config, l_net = load_stage(model_dir, "local")
    if g_config.ndim != l_config.ndim:
        raise ModelError(f"{model_dir}: global stage is {g_config.ndim}D, local stage {l_config.ndim}D")
    members = [load_stage(model_dir, name) for name in member_stage_names(model_dir)]
    return GlobalToLocal(
        g_net, l_net, dataclasses.asdict(g_config), dataclasses.asdict(l_config),
        info["landmark_names"], presence_threshold=inference.presence_threshold,
        local_iterations=inference.local_iterations, shift_crops=inference.shift_crops,
        calibration=calibration, normalise_scale=inference.normalise_scale,
        global_shifts=inference.global_shifts, member_weighting=inference.member_weighting,
        reference_distances_mm=reference if inference.normalise_scale else None,
        shape_weights=shape_weights if shape_weights is not None else info.get("shape_weights"),
        extra_local_nets=[net for _, net in members],
        extra_local_configs=[dataclasses.asdict(c) for c, _ in members],
        name="global_to_local",
    )
