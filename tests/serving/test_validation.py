"""Requests are checked against the loaded signature's TensorSpecs before TensorFlow runs,
and the graph's own asserts answer with their message."""

import re

import numpy as np
import pytest
import tensorflow as tf

from lmk_tf.errors import RequestError
from lmk_tf.serving import servable
from lmk_tf.serving.validation import (
    Internal,
    InvalidArgument,
    Limits,
    NotFound,
    SignatureSpec,
    from_protos,
    from_values,
    status_of,
)
from tests.serving.toy_model import expected

SPEC_2D = SignatureSpec({
    "image": tf.TensorSpec([None, None, 1], tf.float32, name="image"),
    "spacing": tf.TensorSpec([2], tf.float32, name="spacing"),
})


def good(h=6, w=5):
    return {
        "image": np.random.default_rng(0).random((h, w, 1), np.float32),
        "spacing": np.array([0.5, 0.25], np.float32),
    }


def with_(**changes):
    inputs = good()
    for key, value in changes.items():
        if value is None:
            del inputs[key]
        else:
            inputs[key] = value
    return inputs


@pytest.mark.parametrize(
    "inputs, message",
    [
        (with_(spacing=None), "missing input 'spacing'"),
        (with_(mask=np.zeros(3, np.float32)), "unknown input 'mask'"),
        (with_(image=np.zeros((6, 5), np.float32)), "input 'image' must have rank 3"),
        (with_(image=np.zeros((6, 5, 3), np.float32)), "input 'image' must have size 1 along axis 2"),
        (with_(image=np.zeros((6, 5, 1), np.float64)), "input 'image' must be float32, got float64"),
        (with_(spacing=np.array([1, 1], np.int32)), "input 'spacing' must be float32, got int32"),
        (with_(spacing=np.array([1.0, 1.0, 1.0], np.float32)),
         "input 'spacing' must have size 2 along axis 0 (float32 [2]), got shape [3]"),
        (with_(spacing=np.array([np.inf, 1.0], np.float32)), "input 'spacing' has 1 non-finite"),
    ],
)
def test_bad_arrays_are_refused_naming_the_input(inputs, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        from_values(SPEC_2D, inputs)


def test_nan_is_located():
    image = np.ones((6, 5, 1), np.float32)
    image[2, 3, 0] = np.nan
    message = "input 'image' has 1 non-finite values (NaN or inf), the first at index [2, 3, 0]"
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        from_values(SPEC_2D, with_(image=image))


def test_size_limits():
    with pytest.raises(InvalidArgument, match=r"input 'image' has 30 elements .* limit of 29"):
        from_values(SPEC_2D, good(), Limits(max_elements=29))
    with pytest.raises(InvalidArgument, match="at most 5 elements per axis"):
        from_values(SPEC_2D, good(), Limits(max_dim=5))
    assert from_values(SPEC_2D, good(), Limits(max_elements=30, max_dim=6))["image"].shape == (6, 5, 1)


def test_lists_are_cast_when_asked_and_arrays_pass_through():
    inputs = good()
    out = from_values(SPEC_2D, inputs)
    assert out["image"] is inputs["image"]
    cast = from_values(SPEC_2D, {"image": inputs["image"].tolist(), "spacing": [1, 2]}, cast=True)
    assert cast["image"].dtype == np.float32 and cast["spacing"].tolist() == [1.0, 2.0]
    with pytest.raises(InvalidArgument, match="input 'image' cannot be read as float32"):
        from_values(SPEC_2D, {"image": [[[1.0]], [[1.0, 2.0]]], "spacing": [1, 2]}, cast=True)


def protos(**arrays):
    return {name: tf.make_tensor_proto(value) for name, value in arrays.items()}


def test_tensor_protos_decode_and_check_before_decoding():
    inputs = good()
    out = from_protos(SPEC_2D, protos(**inputs))
    np.testing.assert_array_equal(out["image"], inputs["image"])
    bad = protos(**with_(image=inputs["image"].astype(np.float64)))
    with pytest.raises(InvalidArgument, match="input 'image' must be float32, got float64"):
        from_protos(SPEC_2D, bad)
    # A header claiming a huge shape is refused without decoding anything.
    huge = protos(**inputs)
    huge["image"].tensor_shape.dim[0].size = 60000
    huge["image"].tensor_shape.dim[1].size = 60000
    with pytest.raises(InvalidArgument, match=r"input 'image' has 3600000000 elements"):
        from_protos(SPEC_2D, huge)
    # Content that does not fit the declared shape.
    short = protos(**inputs)
    short["image"].tensor_shape.dim[0].size = 7
    with pytest.raises(InvalidArgument, match=r"input 'image': tensor content does not match shape \[7, 5, 1\]"):
        from_protos(SPEC_2D, short)
    unknown = protos(**inputs)
    unknown["spacing"].tensor_shape.unknown_rank = True
    with pytest.raises(InvalidArgument, match="input 'spacing' has no shape"):
        from_protos(SPEC_2D, unknown)


@pytest.fixture(scope="module")
def toy(toy_export):
    return servable.load_version(toy_export["2d"], name="toy", version=1)


def test_spec_is_read_from_the_saved_model(toy):
    assert toy.signatures["serving_default"].spec == SPEC_2D
    assert toy.signatures["model_info"].spec.inputs == {}
    assert toy.model_info["landmark_names"] == ["centroid", "brightest", "centre"]


def test_loaded_signature_answers_like_numpy(toy):
    inputs = good(9, 7)
    out = toy.predict_arrays("serving_default", inputs)
    want = expected(inputs["image"][..., 0], inputs["spacing"])
    for name in want:
        np.testing.assert_allclose(out[name], want[name], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "inputs, message",
    [
        (with_(spacing=np.array([0.0, 0.1], np.float32)), "input 'spacing' must be > 0, got [0 0.1]"),
        (with_(spacing=np.array([-1.0, 1.0], np.float32)), "input 'spacing' must be > 0, got [-1 1]"),
        (with_(image=np.zeros((1, 5, 1), np.float32)),
         "input 'image' must be at least 2 pixels along every axis, got [1 5]"),
        (with_(image=np.zeros((0, 5, 1), np.float32)), "input 'image' must be at least 2 pixels"),
        (with_(image=np.full((6, 5, 1), 2e6, np.float32)), "image maximum must be < 1e6, got [2e+06]"),
    ],
)
def test_graph_asserts_are_invalid_argument_with_their_own_message(toy, inputs, message):
    with pytest.raises(InvalidArgument) as info:
        toy.predict_arrays("serving_default", inputs)
    assert str(info.value).startswith(message), str(info.value)
    assert "\\" not in str(info.value) and "node" not in str(info.value)


def test_other_failures_become_status_codes(toy):
    with pytest.raises(NotFound, match="has no signature 'nope'"):
        toy.predict_arrays("nope", good())
    assert status_of(Internal("x")) == ("INTERNAL", "x")
    assert status_of(ValueError("x")) == ("INTERNAL", "internal error: ValueError: x")
    assert status_of(RequestError("y")) == ("INVALID_ARGUMENT", "y")
    # The model still answers after the failures.
    assert toy.predict_arrays("serving_default", good())["present"].shape == (3,)


def test_string_outputs_are_arrays(toy):
    info = toy.predict_arrays("model_info", {})["model_info"]
    assert isinstance(info, np.ndarray) and info.shape == () and b"landmark_names" in info.item()
    encoded = toy.predict_arrays("encode", {"image": good()["image"]})
    assert encoded["png_bytes"].item().startswith(b"\x89PNG") and encoded["format"].item() == b"png"
