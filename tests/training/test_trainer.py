"""Training lowers the loss, writes its config, and resumes after a kill."""

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from lmk_tf.errors import ConfigError
from lmk_tf.method.config import StageConfig
from lmk_tf.training.trainer import BACKUP_WEIGHTS, build_stage_model, train_stage
from tests.conftest import tiny_configs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class WeightsAtStart(keras.callbacks.Callback):
    """What the model holds when training begins, after BackupAndRestore has restored it."""

    def on_train_begin(self, logs=None):
        self.weights = [np.array(w) for w in self.model.get_weights()]
        self.iterations = int(self.model.optimizer.iterations.numpy())


class EpochLog(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epochs, self.losses, self.weights = [], [], []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(epoch)
        self.losses.append(logs["loss"])
        self.weights.append([np.array(w) for w in self.model.get_weights()])


@pytest.mark.parametrize("stage", ["global", "local"])
def test_a_few_steps_lower_the_loss(stage, tiny_data, tmp_path):
    g, loc = tiny_configs()
    config = dataclasses.replace(g if stage == "global" else loc, steps=40, steps_per_epoch=10,
                                 learning_rate=3e-3)
    log = EpochLog()
    train_stage(config, tiny_data, str(tmp_path), verbose=0, callbacks=[log])
    assert log.losses[-1] < log.losses[0]
    saved = StageConfig.load(os.path.join(tmp_path, stage))
    assert saved == config
    assert os.path.exists(os.path.join(tmp_path, stage, "model.keras"))
    assert json.load(open(os.path.join(tmp_path, "dataset.json")))["ndim"] == 2


def test_resumes_after_sigkill_mid_epoch_with_same_steps_and_loss(tiny_data, tmp_path):
    g, _ = tiny_configs()
    config = dataclasses.replace(g, steps=18, steps_per_epoch=6)
    model_dir = str(tmp_path / "model")
    # A child process trains and is killed (SIGKILL, no clean-up) in the middle
    # of the second epoch, after the first epoch's checkpoint was written.
    script = textwrap.dedent(f"""
        import os, signal, dataclasses, keras
        from lmk_tf.training.trainer import train_stage
        from tests.conftest import tiny_configs
        class Kill(keras.callbacks.Callback):
            epoch = 0
            def on_epoch_begin(self, epoch, logs=None):
                self.epoch = epoch
            def on_train_batch_end(self, batch, logs=None):
                if self.epoch == 1 and batch == 2:
                    os.kill(os.getpid(), signal.SIGKILL)
        config = dataclasses.replace(tiny_configs()[0], steps=18, steps_per_epoch=6)
        train_stage(config, {tiny_data!r}, {model_dir!r}, verbose=0, callbacks=[Kill()])
    """)
    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert not os.path.exists(os.path.join(model_dir, "global", "model.keras"))
    # The checkpoint of the first epoch, as the killed run left it (resuming overwrites it).
    num_landmarks = len(json.load(open(os.path.join(tiny_data, "dataset.json")))["landmark_names"])
    checkpoint = build_stage_model(config, num_landmarks)
    checkpoint.load_weights(os.path.join(model_dir, "global", "backup", BACKUP_WEIGHTS))
    saved = checkpoint.get_weights()
    keras.utils.set_random_seed(config.seed)
    initial = build_stage_model(config, num_landmarks).get_weights()
    assert any(not np.array_equal(a, b) for a, b in zip(saved, initial)), "the checkpoint holds trained weights"

    log, start = EpochLog(), WeightsAtStart()
    model = train_stage(config, tiny_data, model_dir, verbose=0, callbacks=[start, log])
    # Resumed from that checkpoint: its weights exactly, and its optimizer step.
    assert len(start.weights) == len(saved)
    for got, want in zip(start.weights, saved):
        np.testing.assert_array_equal(got, want)
    assert start.iterations == 6
    assert log.epochs == [1, 2], "should redo the interrupted second epoch, then the third"
    assert int(model.optimizer.iterations.numpy()) == 18

    reference = EpochLog()
    train_stage(config, tiny_data, str(tmp_path / "uninterrupted"), verbose=0, callbacks=[reference])
    # Same seeded data and schedule: the final loss agrees within thread-order noise.
    assert log.losses[-1] == pytest.approx(reference.losses[-1], rel=0.25)
    # And the checkpoint is the first epoch's end, the same as the uninterrupted run's.
    for got, want in zip(saved, reference.weights[0]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_unwritable_model_dir_fails_before_training(tiny_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    g, _ = tiny_configs()
    with pytest.raises(ConfigError, match="not writable"):
        train_stage(g, tiny_data, str(blocker / "model"), verbose=0)


def test_spacing_mismatch_names_both_values(tiny_data, tmp_path):
    g, _ = tiny_configs()
    with pytest.raises(ConfigError, match="prepared at global spacing 2.0 mm"):
        train_stage(dataclasses.replace(g, spacing=3.0), tiny_data, str(tmp_path), verbose=0)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="patch_size 30"):
        StageConfig(patch_size=30).validate()
    with pytest.raises(ConfigError, match="stage"):
        StageConfig(stage="middle").validate()
