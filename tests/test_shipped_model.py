"""The committed ISBI 2015 model loads and answers in a process that never imports lmk_tf.

This is how TF Serving or any client without the package sees it: stock
TensorFlow, the SavedModel directory, nothing else.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lmk_tf.synthetic import make_sample

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(REPO, "saved_models", "isbi2015_ceph")
LANDMARK_OUTPUTS = {"landmarks_index", "landmarks_mm", "confidence", "present"}
UNCERTAINTY_OUTPUTS = {"expected_error_mm", "radius90_mm"}
# Version 9 (three four-stage local nets, one trained with narrower augmentation) and version 10
# (the same nets, the predicted error's calibration with hinges) both answer the predicted error.
VERSIONS = {9: LANDMARK_OUTPUTS | UNCERTAINTY_OUTPUTS, 10: LANDMARK_OUTPUTS | UNCERTAINTY_OUTPUTS}

SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np
    import tensorflow as tf
    from tensorflow.core.protobuf import saved_model_pb2

    # What TF Serving's GetModelMetadata answers: the signature_def map of saved_model.pb.
    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(sys.argv[1], "saved_model.pb"), "rb") as f:
        proto.ParseFromString(f.read())
    metadata = sorted(proto.meta_graphs[0].signature_def["serving_default"].outputs)

    model = tf.saved_model.load(sys.argv[1])
    fn = model.signatures["serving_default"]
    _, inputs = fn.structured_input_signature
    info = json.loads(model.signatures["model_info"]()["model_info"].numpy().decode())
    image = np.load(sys.argv[2])
    spacing = [float(s) for s in sys.argv[3].split(",")]
    out = fn(image=tf.constant(image[..., None], tf.float32), spacing=tf.constant(spacing, tf.float32))
    assert not any(m.startswith("lmk_tf") for m in sys.modules), "lmk_tf was imported"
    print(json.dumps({
        "signatures": sorted(model.signatures),
        "inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in inputs.items()},
        "outputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in fn.structured_outputs.items()},
        "names": info["landmark_names"],
        "metadata_outputs": metadata,
        "answer": {k: v.numpy().tolist() for k, v in out.items()},
    }))
""")


@pytest.mark.slow
@pytest.mark.parametrize("version", sorted(VERSIONS))
def test_shipped_model_answers_in_a_fresh_process_without_lmk_tf(version, tmp_path):
    # A synthetic skull-like picture of a cephalogram's proportions, at 0.3 mm (not the 0.1 mm of
    # the training images: the graph resamples whatever spacing it is given).
    image, _, _ = make_sample(2, 5, shape=(600, 480), spacing=(0.3, 0.3))
    np.save(tmp_path / "image.npy", image.array.astype(np.float32))
    path = os.path.join(SHIPPED, str(version))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, path, str(tmp_path / "image.npy"), "0.3,0.3"],
                          capture_output=True, text=True, timeout=300, cwd=str(tmp_path),
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])

    assert {"serving_default", "model_info"} <= set(got["signatures"])
    assert got["inputs"] == {"image": ["float32", [None, None, 1]], "spacing": ["float32", [2]]}
    outputs = got["outputs"]
    assert set(outputs) == VERSIONS[version]
    assert set(got["metadata_outputs"]) == VERSIONS[version]
    assert outputs["landmarks_index"][0] == "float32" and outputs["landmarks_index"][1][-1] == 2
    assert outputs["present"][0] == "bool"
    assert len(got["names"]) == 19 and got["names"][:2] == ["sella", "nasion"]

    answer = {k: np.asarray(v) for k, v in got["answer"].items()}
    index = answer["landmarks_index"]
    assert index.shape == (19, 2) and np.isfinite(index).all()
    assert (index >= -0.5).all() and (index <= np.array(image.shape) - 0.5).all(), index
    np.testing.assert_allclose(answer["landmarks_mm"], index * 0.3, rtol=1e-5)
    assert answer["confidence"].shape == (19,) and ((answer["confidence"] >= 0) & (answer["confidence"] <= 1)).all()
    assert answer["present"].dtype == bool and answer["present"].shape == (19,)
    for name in VERSIONS[version] & UNCERTAINTY_OUTPUTS:
        assert outputs[name] == ["float32", [19]], name
        assert np.isfinite(answer[name]).all() and (answer[name] > 0).all(), (name, answer[name])
    if UNCERTAINTY_OUTPUTS <= VERSIONS[version]:
        # The 90 % radius is wider than the expected error, by the calibration's conformal factor.
        assert (answer["radius90_mm"] > answer["expected_error_mm"]).all()
