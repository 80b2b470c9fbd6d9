"""Training one stage: model, data, checkpoints that survive interruption, logs.

Layout of a model directory:

    <model_dir>/dataset.json         copied from the prepared data (names, ndim)
    <model_dir>/inference.json       the preset's inference settings, read by export
    <model_dir>/<stage>/config.json  the resolved StageConfig
    <model_dir>/<stage>/backup/      last two completed epochs (resume after a kill;
                                     a corrupt newest one is moved to backup/corrupt-*)
    <model_dir>/<stage>/logs/        TensorBoard
    <model_dir>/<stage>/model.keras  the trained network, written when done

With several workers (`strategy="multi_worker"`) only the chief writes these;
see `lmk_tf.training.distribute`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from dataclasses import replace

import keras

from lmk_tf.data.datasets import training_dataset
from lmk_tf.errors import ConfigError
from lmk_tf.method.config import StageConfig
from lmk_tf.method.losses import stage_losses
from lmk_tf.method.model_dir import load_dataset_info, stage_files
from lmk_tf.method.networks import build_fcn, build_local_net
from lmk_tf.method.presets import InferenceConfig
from lmk_tf.training import distribute
from lmk_tf.training.distribute import STRATEGIES, make_strategy  # noqa: F401 - re-exported for lmk-train

MIN_FREE_BYTES = 200 * 2**20


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


BACKUP_WEIGHTS = "latest.weights.h5"
BACKUP_METADATA = "training_metadata.json"
PREVIOUS_SUFFIX = ".bkp"  # keras BackupAndRestore(double_checkpoint=True) names


def backup_problem(weights_path: str, metadata_path: str) -> str | None:
    """Why a BackupAndRestore checkpoint cannot be resumed from, or None if it can.

    Reads every weight tensor and the metadata, so a file truncated or garbled
    by a kill mid-write is found here rather than halfway through
    `load_weights` (Keras falls back to the previous checkpoint only on an
    OSError from the weights file; a cut JSON file makes it crash).
    """
    import h5py

    if not os.path.exists(weights_path):
        return f"{os.path.basename(weights_path)} is missing"
    try:
        with open(metadata_path, encoding="utf-8") as f:
            metadata = json.load(f)
        epoch = metadata["epoch"]
        if not isinstance(epoch, int) or epoch < 0:
            raise ValueError(f"epoch {epoch!r}")
    except FileNotFoundError:
        return f"{os.path.basename(metadata_path)} is missing"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{os.path.basename(metadata_path)} is unreadable ({type(e).__name__}: {e})"
    try:
        with h5py.File(weights_path, "r") as f:
            f.visititems(lambda _, item: item[()] if isinstance(item, h5py.Dataset) else None)
    except Exception as e:
        return f"{os.path.basename(weights_path)} is unreadable ({type(e).__name__}: {e})"
    return None


def check_backup(backup_dir: str, *, out=None) -> str:
    """Make sure what BackupAndRestore will resume from is intact; returns what was found.

    'none' (fresh start), 'latest', 'previous' (the newest checkpoint was corrupt;
    it is moved to backup/corrupt-<time>/ and the one before it put in its place)
    or 'corrupt' (no usable checkpoint: all moved aside, training starts over).
    Each fallback prints one warning line to `out`.
    """
    out = out or sys.stderr
    latest = (os.path.join(backup_dir, BACKUP_WEIGHTS), os.path.join(backup_dir, BACKUP_METADATA))
    previous = tuple(p + PREVIOUS_SUFFIX for p in latest)
    present = [p for p in latest + previous if os.path.exists(p)]
    if not present:
        return "none"
    problem = backup_problem(*latest)
    if problem is None:
        return "latest"
    aside = os.path.join(backup_dir, time.strftime("corrupt-%Y%m%d-%H%M%S"))
    os.makedirs(aside, exist_ok=True)
    for path in latest:
        if os.path.exists(path):
            os.replace(path, os.path.join(aside, os.path.basename(path)))
    previous_problem = backup_problem(*previous) if any(map(os.path.exists, previous)) else "none kept"
    if previous_problem is None:
        for src, dst in zip(previous, latest):
            shutil.copyfile(src, dst)
        print(f"warning: {backup_dir}: the newest checkpoint is damaged ({problem}); moved to "
              f"{aside}, resuming from the one before it", file=out, flush=True)
        return "previous"
    for path in previous:
        if os.path.exists(path):
            os.replace(path, os.path.join(aside, os.path.basename(path)))
    print(f"warning: {backup_dir}: no usable checkpoint (newest: {problem}; previous: "
          f"{previous_problem}); moved to {aside}, training starts from step 0", file=out, flush=True)
    return "corrupt"


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


def train_stage(config: StageConfig, data_dir: str, model_dir: str, *, inference: InferenceConfig | None = None,
                strategy="default", verbose=None, callbacks=(), stage_dir_name: str | None = None):
    """Trains (or resumes training of) one stage; returns the trained Keras model.

    Rerunning with the same directories after an interruption resumes from the
    last completed epoch. `inference` (the preset's) is written to
    <model_dir>/inference.json for export. `callbacks` are extra Keras callbacks.
    The stage goes to <model_dir>/<stage_dir_name> (default: the stage's name;
    a further local net of an ensemble: `presets.member_dir(k)`).
    """
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
    strategy = make_strategy(strategy)
    role = distribute.worker_role(strategy)
    distribute.check_split(files, config.batch_size, strategy.num_replicas_in_sync, role, data_dir, config.stage)
    stage_dir = os.path.join(model_dir, stage_dir_name or config.stage)
    # What the chief writes to stage_dir, the other workers write to scratch.
    out_dir = stage_dir if role.is_chief else role.scratch_dir(stage_dir)
    check_writable(out_dir)
    if role.is_chief:
        with open(os.path.join(model_dir, "dataset.json"), "w") as f:
            json.dump(info, f, indent=2)
        if inference is not None:
            inference.validate().save(model_dir)
        config.save(stage_dir)

    keras.utils.set_random_seed(config.seed)
    with strategy.scope():
        model = build_stage_model(config, num_landmarks)
        schedule = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=config.steps, alpha=0.05
        )
        losses, weights = stage_losses(config.ndim, config.alpha)
        model.compile(
            optimizer=keras.optimizers.Adam(schedule, amsgrad=True), loss=losses, loss_weights=weights
        )
    if role.count > 1:
        # config.batch_size is the global batch, split across the workers.
        dataset = distribute.per_worker_dataset(
            strategy, lambda mine, batch: training_dataset(mine, replace(config, batch_size=batch), num_landmarks),
            files, config.batch_size,
        )
    else:
        dataset = training_dataset(files, config, num_landmarks)
    epochs = math.ceil(config.steps / config.steps_per_epoch)
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 0
    extra = list(callbacks)
    backup_dir = os.path.join(out_dir, "backup")
    if role.is_chief:
        check_backup(backup_dir)
    if role.count > 1:
        distribute.agree_on_resume(strategy, role, os.path.join(stage_dir, "backup"), backup_dir)
    # Every worker's copy of the moving statistics is averaged before anything is saved.
    callbacks = [distribute.AverageMovingStatistics(strategy)] if role.count > 1 else []
    callbacks += [
        # double_checkpoint keeps the previous backup; check_backup (above) puts
        # it in place when a kill mid-write left the newest one damaged.
        keras.callbacks.BackupAndRestore(
            backup_dir, save_freq="epoch", double_checkpoint=True, delete_checkpoint=False,
        ),
        keras.callbacks.TensorBoard(os.path.join(out_dir, "logs"), write_graph=False),
    ]
    if not verbose:
        callbacks.append(_ProgressLine(config.stage, epochs, config.steps_per_epoch))
    callbacks += extra
    t0 = time.time()
    history = distribute.fit(model, strategy, dataset, epochs=epochs, steps_per_epoch=config.steps_per_epoch,
                             callbacks=callbacks, verbose=verbose, shuffle=False)
    with open(os.path.join(out_dir, "training.json"), "w") as f:
        # What this (possibly resumed) run took and ended at, for reports.
        json.dump({"seconds": round(time.time() - t0, 1), "steps": config.steps,
                   "final": {k: float(v[-1]) for k, v in history.history.items() if v}}, f, indent=2)
    # Every worker saves, as TensorFlow's multi-worker guide has it (reading a
    # distributed variable can take every worker); the copies in scratch go.
    save_model_atomic(model, os.path.join(out_dir, "model.keras"))
    if not role.is_chief:
        shutil.rmtree(out_dir, ignore_errors=True)
    if role.count > 1:
        # All leave together: a worker that exits while the chief still writes
        # makes the chief log that it "stopped sending heartbeats".
        distribute.gather(strategy, [0])
    return model


def save_model_atomic(model, path: str):
    tmp = path + ".tmp.keras"
    model.save(tmp)
    os.replace(tmp, path)
