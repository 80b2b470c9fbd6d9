"""Training faults: damaged checkpoints fall back, a full disk fails before training."""

import dataclasses
import json
import os
import shutil

import pytest

from lmk_tf.errors import ConfigError
from lmk_tf.training import trainer
from lmk_tf.training.trainer import check_backup, train_stage
from tests.conftest import tiny_configs
from tests.training.test_trainer import EpochLog


@pytest.fixture(scope="module")
def two_epochs(tiny_data, tmp_path_factory):
    """A global stage trained for 2 epochs: backup holds epoch 2 and (.bkp) epoch 1."""
    model_dir = str(tmp_path_factory.mktemp("ckpt"))
    g, _ = tiny_configs()
    train_stage(dataclasses.replace(g, steps=12, steps_per_epoch=6), tiny_data, model_dir, verbose=0)
    return model_dir


def copy_of(two_epochs, tmp_path):
    model_dir = str(tmp_path / "model")
    shutil.copytree(two_epochs, model_dir)
    os.remove(os.path.join(model_dir, "global", "model.keras"))
    return model_dir, os.path.join(model_dir, "global", "backup")


def truncate(path):
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size // 2)


def resume(tiny_data, model_dir):
    g, _ = tiny_configs()
    log = EpochLog()
    model = train_stage(dataclasses.replace(g, steps=18, steps_per_epoch=6), tiny_data, model_dir,
                        verbose=0, callbacks=[log])
    return log.epochs, int(model.optimizer.iterations.numpy())


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated_weights", "cut_metadata"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(damage, two_epochs, tiny_data, tmp_path,
                                                              capsys):
    model_dir, backup = copy_of(two_epochs, tmp_path)
    if damage == "truncated_weights":
        truncate(os.path.join(backup, "latest.weights.h5"))
    else:  # a kill while the metadata was being written: Keras itself crashes on this
        with open(os.path.join(backup, "training_metadata.json"), "w") as f:
            f.write('{"epoch": ')
    epochs, steps = resume(tiny_data, model_dir)
    assert epochs == [1, 2], "should redo epoch 2 from the epoch-1 checkpoint"
    assert steps == 18
    assert "the newest checkpoint is damaged" in capsys.readouterr().err
    assert [d for d in os.listdir(backup) if d.startswith("corrupt-")]


@pytest.mark.slow
def test_no_usable_checkpoint_starts_over_with_a_warning(two_epochs, tiny_data, tmp_path, capsys):
    model_dir, backup = copy_of(two_epochs, tmp_path)
    truncate(os.path.join(backup, "latest.weights.h5"))
    truncate(os.path.join(backup, "latest.weights.h5.bkp"))
    epochs, steps = resume(tiny_data, model_dir)
    assert epochs == [0, 1, 2] and steps == 18
    assert "no usable checkpoint" in capsys.readouterr().err


def test_check_backup_reports_what_it_found(tmp_path):
    backup = str(tmp_path / "backup")
    os.makedirs(backup)
    assert check_backup(backup) == "none"
    with open(os.path.join(backup, "training_metadata.json"), "w") as f:
        json.dump({"epoch": 1}, f)
    with open(os.path.join(backup, "latest.weights.h5"), "wb") as f:
        f.write(b"\x89HDF\r\n\x1a\n" + b"\0" * 10)
    assert check_backup(backup, out=open(os.devnull, "w")) == "corrupt"
    assert not os.path.exists(os.path.join(backup, "latest.weights.h5"))


def test_full_disk_fails_before_training(tiny_data, tmp_path, monkeypatch):
    real = shutil.disk_usage
    monkeypatch.setattr(trainer.shutil, "disk_usage",
                        lambda p: real(p)._replace(free=50 * 2**20))
    g, _ = tiny_configs()
    with pytest.raises(ConfigError, match=r"only 50 MB free; training needs at least 200 MB"):
        train_stage(g, tiny_data, str(tmp_path / "model"), verbose=0)
    assert not os.path.exists(tmp_path / "model" / "global" / "backup")
