"""The model manager follows version policies, labels, the disk and the config file."""

import os
import shutil

import numpy as np
import pytest

from lmk_tf.export.contract import WARMUP_FILE
from lmk_tf.export.warmup import write_warmup_requests
from lmk_tf.serving.manager import AVAILABLE, END, ModelManager, parse_model_config, read_model_config, select_versions
from lmk_tf.serving.validation import NotFound
from tests.serving.conftest import install_version


def config_text(base, policy="", labels=None, name="toy"):
    labels_text = "".join(
        f'version_labels {{ key: "{k}" value: {v} }} ' for k, v in (labels or {}).items()
    )
    return (f'model_config_list {{ config {{ name: "{name}" base_path: "{base}" '
            f'model_platform: "tensorflow" {policy} {labels_text}}} }}')


def make_manager(base, policy="", labels=None, **kwargs):
    events = []
    config = parse_model_config(config_text(base, policy, labels))
    manager = ModelManager(
        config, file_system_poll_wait_seconds=0, warmup=False,
        on_event=lambda *e: events.append(e[:3]), **kwargs,
    )
    return manager, events


def states(manager, name="toy"):
    return {s.version: s.state for s in manager.status(name)}


@pytest.fixture
def base(tmp_path, toy_export):
    path = tmp_path / "toy"
    for version in (1, 2, 3):
        install_version(toy_export["2d"], str(path), version)
    return str(path)


def test_select_versions_follows_the_policy():
    on_disk = {1: "a", 2: "b", 5: "c"}
    cfg = parse_model_config(config_text("/x"))
    policy = cfg.model_config_list.config[0].model_version_policy
    assert select_versions(policy, on_disk) == {5}  # default: latest 1
    policy.latest.num_versions = 2
    assert select_versions(policy, on_disk) == {2, 5}
    policy.all.SetInParent()
    assert select_versions(policy, on_disk) == {1, 2, 5}
    policy.specific.versions.extend([1, 7])
    assert select_versions(policy, on_disk) == {1}


def test_default_policy_serves_only_the_latest(base):
    manager, events = make_manager(base)
    manager.start()
    assert states(manager) == {3: AVAILABLE}
    assert manager.get("toy").version == 3
    with pytest.raises(NotFound, match=r"model 'toy' version 1 is not AVAILABLE \(available versions: 3\)"):
        manager.get("toy", version=1)
    with pytest.raises(NotFound, match=r"model 'nope' is not served \(served models: 'toy'\)"):
        manager.get("nope")
    assert events == [("toy", 3, AVAILABLE)]


def test_specific_versions_and_labels(base):
    manager, _ = make_manager(
        base, "model_version_policy { specific { versions: 1 versions: 2 } }",
        {"stable": 1, "canary": 2, "future": 9},
    )
    manager.start()
    assert states(manager) == {1: AVAILABLE, 2: AVAILABLE}
    assert manager.get("toy", label="stable").version == 1
    assert manager.get("toy", label="canary").version == 2
    assert manager.get("toy").version == 2
    with pytest.raises(NotFound, match="no version label 'beta'"):
        manager.get("toy", label="beta")
    with pytest.raises(NotFound, match=r"version 9 \(label 'future'\) is not AVAILABLE"):
        manager.get("toy", label="future")


def test_new_version_is_loaded_and_old_one_unloaded(base, toy_export):
    manager, events = make_manager(base)
    manager.start()
    install_version(toy_export["2d"], base, 4)
    manager.poll()  # first sight: waits until the files have settled
    assert manager.get("toy").version == 3
    manager.poll()
    assert manager.get("toy").version == 4
    assert states(manager) == {4: AVAILABLE, 3: END}
    assert events[-2:] == [("toy", 4, AVAILABLE), ("toy", 3, END)]


def test_removed_version_is_unloaded(base):
    manager, events = make_manager(base, "model_version_policy { all {} }")
    manager.start()
    assert states(manager) == {1: AVAILABLE, 2: AVAILABLE, 3: AVAILABLE}
    shutil.rmtree(os.path.join(base, "2"))
    manager.poll()
    assert states(manager) == {1: AVAILABLE, 2: END, 3: AVAILABLE}
    with pytest.raises(NotFound):
        manager.get("toy", version=2)
    assert ("toy", 2, END) in events


def test_half_written_directories_are_never_served(base, toy_export):
    manager, _ = make_manager(base)
    manager.start()
    # No saved_model.pb yet (an exporter writes it last): ignored.
    partial = os.path.join(base, "7")
    shutil.copytree(os.path.join(toy_export["2d"], "variables"), os.path.join(partial, "variables"))
    # Not an integer name: ignored, like TF Serving does.
    install_version(toy_export["2d"], base, 8)
    os.rename(os.path.join(base, "8"), os.path.join(base, "8.tmp"))
    for _ in range(3):
        manager.poll()
    assert manager.get("toy").version == 3
    # A directory still changing between two polls is not loaded yet.
    shutil.copy(os.path.join(toy_export["2d"], "saved_model.pb"), partial)
    manager.poll()
    assert manager.get("toy").version == 3
    with open(os.path.join(partial, "variables", "extra"), "w") as f:
        f.write("still copying")
    manager.poll()
    assert manager.get("toy").version == 3
    manager.poll()  # unchanged since the last poll: loaded now
    assert manager.get("toy").version == 7


def test_failed_load_keeps_the_old_version_and_is_retried(base, toy_export):
    manager, events = make_manager(base)
    manager.start()
    broken = os.path.join(base, "5")
    os.makedirs(broken)
    with open(os.path.join(broken, "saved_model.pb"), "wb") as f:
        f.write(b"not a protobuf")
    manager.poll()
    manager.poll()
    assert manager.get("toy").version == 3  # still served
    status = {s.version: s for s in manager.status("toy")}
    assert status[5].state == END and "cannot load SavedModel" in status[5].error
    assert events[-1][1:] == (5, "FAILED")
    manager.poll()  # same files: not retried within the retry interval
    assert sum(1 for e in events if e[1:] == (5, "FAILED")) == 1
    shutil.rmtree(broken)
    shutil.copytree(toy_export["2d"], broken)
    manager.poll()
    manager.poll()
    assert manager.get("toy").version == 5
    assert states(manager)[5] == AVAILABLE and states(manager)[3] == END


def test_warmup_requests_are_replayed_and_a_failing_one_fails_the_load(tmp_path, toy_export):
    from lmk_tf.serving import servable

    path = install_version(toy_export["2d"], str(tmp_path / "w"), 1)
    served = servable.load_version(path)
    assert servable.replay_warmup(served) == 1
    # A warm-up record the model cannot answer (3D image for a 2D model).
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(np.ones((3, 3, 3, 1), np.float32)))
    request.inputs["spacing"].CopyFrom(tf.make_tensor_proto(np.ones(2, np.float32)))
    write_warmup_requests(os.path.join(path, WARMUP_FILE), [request])
    with pytest.raises(Exception, match="warm-up record 1 failed: input 'image' must have rank 3"):
        servable.load_version(path)


def test_config_file_changes_are_applied(tmp_path, base):
    config_path = tmp_path / "models.config"
    config_path.write_text(config_text(base))
    manager = ModelManager(
        read_model_config(str(config_path)), config_path=str(config_path),
        file_system_poll_wait_seconds=0, warmup=False,
    )
    manager.start()
    assert manager.get("toy").version == 3
    # New labels and a second model, without a restart.
    config_path.write_text(
        'model_config_list { '
        f'config {{ name: "toy" base_path: "{base}" '
        'model_version_policy { specific { versions: 1 } } '
        'version_labels { key: "stable" value: 1 } } '
        f'config {{ name: "other" base_path: "{base}" }} }}'
    )
    manager.reread_config_file()
    assert manager.get("toy", label="stable").version == 1
    assert states(manager) == {1: AVAILABLE, 3: END}
    assert manager.get("other").version == 3
    # A broken file is reported and the running config stays.
    config_path.write_text("model_config_list { config { name: ")
    manager.reread_config_file()
    assert manager.get("other").version == 3 and manager.get("toy", label="stable").version == 1
    # Removing a model from the config stops serving it.
    config_path.write_text(config_text(base))
    manager.reread_config_file()
    assert manager.get("toy").version == 3
    with pytest.raises(NotFound):
        manager.get("other")


def test_background_polling_picks_up_a_new_version(base, toy_export):
    import time

    config = parse_model_config(config_text(base))
    manager = ModelManager(config, file_system_poll_wait_seconds=0.05, warmup=False)
    manager.start()
    try:
        install_version(toy_export["2d"], base, 6)
        deadline = time.monotonic() + 20
        while manager.get("toy").version != 6:
            assert time.monotonic() < deadline, "version 6 was not picked up"
            time.sleep(0.05)
    finally:
        manager.stop()
