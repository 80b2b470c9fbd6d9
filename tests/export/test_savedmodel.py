"""One SavedModel for the whole graph: stock ops only, same answers in a fresh process."""

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from lmk_tf.errors import ConfigError
from lmk_tf.export.contract import OUTPUT_KEYS, WARMUP_FILE, read_model_info
from lmk_tf.export.savedmodel import export
from lmk_tf.image import Image
from lmk_tf.method.model_dir import assemble
from lmk_tf.method.presets import InferenceConfig
from lmk_tf.serving import servable
from lmk_tf.serving.local import LocalModel
from lmk_tf.synthetic import make_sample
from tests.conftest import call_graph


def test_layout_is_tf_serving_versioned(exported):
    base = os.path.dirname(exported)
    assert os.path.basename(exported) == "1"
    assert os.listdir(base) == ["1"], "no temporary directory may be left behind"
    for name in ("saved_model.pb", "variables", os.path.join("assets", "model_info.json"), WARMUP_FILE):
        assert os.path.exists(os.path.join(exported, name)), name
    info = read_model_info(exported)
    assert info["ndim"] == 2 and len(info["landmark_names"]) == 6


def test_versions_are_immutable_and_numbered(exported, tiny_model_dir):
    base = os.path.dirname(exported)
    with pytest.raises(ConfigError, match="already exists"):
        export(tiny_model_dir, base, version=1)


def test_inference_settings_are_the_trained_ones_unless_given(tiny_model_dir, tmp_path):
    model_dir = str(shutil.copytree(tiny_model_dir, tmp_path / "model"))
    InferenceConfig(presence_threshold=0.0, local_iterations=2).save(model_dir)
    info = read_model_info(export(model_dir, str(tmp_path / "trained")))
    assert (info["presence_threshold"], info["local_iterations"]) == (0.0, 2)
    info = read_model_info(export(model_dir, str(tmp_path / "given"), local_iterations=3))
    assert (info["presence_threshold"], info["local_iterations"]) == (0.0, 3)


def test_graph_has_only_stock_ops(exported):
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    with open(os.path.join(exported, "saved_model.pb"), "rb") as f:
        sm.ParseFromString(f.read())
    graph = sm.meta_graphs[0].graph_def
    ops = {n.op for n in graph.node}
    for fn in graph.library.function:
        ops |= {n.op for n in fn.node_def}
    assert not ops & {"PyFunc", "PyFuncStateless", "EagerPyFunc"}
    registered = set(tf.raw_ops.__dict__)
    assert ops - registered <= {"StatefulPartitionedCall", "PartitionedCall"} | registered


@pytest.fixture(scope="module")
def keras_predictor(tiny_model_dir):
    model = assemble(tiny_model_dir)
    return lambda image: call_graph(model, image)


def test_warmup_record_replays_and_answers_like_the_keras_graph(exported, keras_predictor):
    from tensorflow_serving.apis import prediction_log_pb2

    records = list(tf.data.TFRecordDataset(os.path.join(exported, WARMUP_FILE)).as_numpy_iterator())
    requests = {prediction_log_pb2.PredictionLog.FromString(r).predict_log.request.model_spec.signature_name:
                prediction_log_pb2.PredictionLog.FromString(r).predict_log.request for r in records}
    # One per image signature, so that none pays its first-call set-up in a client's request.
    assert {name: set(r.inputs) for name, r in requests.items()} == {
        "serving_default": {"image", "spacing"}, "serving_batch": {"image", "spacing"},
        "serving_encoded": {"image_bytes", "spacing"}}
    request = requests["serving_default"]
    # The server's loader replays them (a failing record would fail the load).
    local = LocalModel(exported, warmup=True)
    assert servable.replay_warmup(local.served) == 3
    # And the request is a real one: the served graph answers it as the Keras graph does.
    image = tf.make_ndarray(request.inputs["image"])
    spacing = tf.make_ndarray(request.inputs["spacing"])
    assert image.shape == (256, 256, 1) and spacing.shape == (2,)
    served = local.predict({"image": image, "spacing": spacing})
    expected = keras_predictor(Image(image[..., 0], tuple(float(s) for s in spacing)))
    for key in OUTPUT_KEYS:
        np.testing.assert_allclose(served[key], expected[key], atol=1e-4, err_msg=key)


def test_local_model_loads_the_export_and_matches_the_keras_graph(exported, keras_predictor):
    local = LocalModel(os.path.dirname(exported))  # the base directory: its highest version
    assert local.version == 1 and local.landmark_names == read_model_info(exported)["landmark_names"]
    image, _, _ = make_sample(2, 12, shape=(75, 66), spacing=(0.9, 1.2))
    expected = keras_predictor(image)
    raw = local.predict({"image": image.array[..., None].astype(np.float32),
                         "spacing": np.asarray(image.spacing, np.float32)})
    assert set(raw) == set(OUTPUT_KEYS)
    for key in OUTPUT_KEYS:
        np.testing.assert_allclose(raw[key], expected[key], atol=1e-4, err_msg=key)
    shaped = local.predict_image(image)
    assert [lm["name"] for lm in shaped["landmarks"]] == local.landmark_names
    np.testing.assert_allclose([lm["index"] for lm in shaped["landmarks"]], expected["landmarks_index"],
                               atol=1e-4)


def test_fresh_process_without_lmk_tf_gives_same_landmarks(exported, keras_predictor, tmp_path):
    image, _, _ = make_sample(2, 11, shape=(80, 72))
    np.save(tmp_path / "image.npy", image.array)
    expected = keras_predictor(image)
    script = textwrap.dedent(f"""
        import json, sys, numpy as np, tensorflow as tf
        fn = tf.saved_model.load({exported!r}).signatures["serving_default"]
        x = np.load({str(tmp_path / 'image.npy')!r})[..., None].astype(np.float32)
        out = fn(image=tf.constant(x), spacing=tf.constant([1.0, 1.0]))
        assert not any(m.startswith("lmk_tf") for m in sys.modules)
        print(json.dumps({{k: v.numpy().tolist() for k, v in out.items()}}))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(got) == set(OUTPUT_KEYS)
    np.testing.assert_allclose(got["landmarks_index"], expected["landmarks_index"], atol=1e-3)
    np.testing.assert_allclose(got["landmarks_mm"], expected["landmarks_mm"], atol=1e-3)
    np.testing.assert_array_equal(got["present"], expected["present"])


def test_served_graph_rejects_bad_spacing_with_invalid_argument(exported):
    fn = tf.saved_model.load(exported).signatures["serving_default"]
    image = tf.zeros([20, 20, 1])
    with pytest.raises(tf.errors.InvalidArgumentError, match="spacing"):
        fn(image=image, spacing=tf.constant([0.0, 1.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="finite"):
        fn(image=tf.fill([20, 20, 1], np.nan), spacing=tf.constant([1.0, 1.0]))


def test_model_info_signature_carries_the_landmark_names(exported):
    fn = tf.saved_model.load(exported).signatures["model_info"]
    info = json.loads(fn()["model_info"].numpy().decode())
    assert info["landmark_names"] == read_model_info(exported)["landmark_names"]



def test_an_export_traces_the_graph_once(tiny_model_dir, tmp_path, monkeypatch):
    # Each trace of the whole graph costs seconds; signatures that retrace it (or
    # tf.saved_model.save tracing the Keras model again) made exports 5x slower.
    from lmk_tf.method.graph import GlobalToLocal

    traces = []
    original = GlobalToLocal.call
    monkeypatch.setattr(GlobalToLocal, "call", lambda self, inputs: traces.append(1) or original(self, inputs))
    saved = export(tiny_model_dir, str(tmp_path / "once"))
    assert len(traces) == 1
    assert set(servable.load_version(saved, warmup=True).signatures) == {
        "serving_default", "serving_batch", "serving_encoded", "diagnostics", "model_info"}
