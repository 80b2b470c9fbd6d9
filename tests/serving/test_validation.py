"""Requests are checked against the signature before TensorFlow runs."""

import re

import numpy as np
import pytest
import tensorflow as tf

from lmk_tf.serving import servable
from lmk_tf.serving.status import Internal, InvalidArgument, NotFound, code_of
from lmk_tf.serving.validation import (
    InputSpec,
    Limits,
    SignatureSpec,
    validate_arrays,
    validate_tensor_protos,
)
from tests.serving.toy_model import expected

SPEC_2D = SignatureSpec(
    inputs={
        "image": InputSpec("image", np.dtype(np.float32), (None, None, 1)),
        "spacing": InputSpec("spacing", np.dtype(np.float32), (2,)),
    },
    outputs=("confidence", "landmarks_index", "landmarks_mm", "present"),
)


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
        (with_(spacing=np.array([0.0, 0.1], np.float32)), "input 'spacing' must be > 0, got [0.0, 0.10"),
        (with_(spacing=np.array([-1.0, 1.0], np.float32)), "input 'spacing' must be > 0"),
        (with_(spacing=np.array([1.0, 1.0, 1.0], np.float32)), "input 'spacing' must have size 2"),
        (with_(spacing=np.array([np.inf, 1.0], np.float32)), "input 'spacing' has 1 non-finite"),
        (with_(image=np.zeros((1, 5, 1), np.float32)), "input 'image' must be at least 2 pixels"),
        (with_(image=np.zeros((0, 5, 1), np.float32)), "input 'image' must be at least 2 pixels"),
    ],
)
def test_bad_arrays_are_refused_naming_the_input(inputs, message):
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        validate_arrays(SPEC_2D, inputs)


def test_nan_is_located():
    image = np.ones((6, 5, 1), np.float32)
    image[2, 3, 0] = np.nan
    message = "input 'image' has 1 non-finite values (NaN or inf), the first at index [2, 3, 0]"
    with pytest.raises(InvalidArgument, match=re.escape(message)):
        validate_arrays(SPEC_2D, with_(image=image))


def test_size_limits():
    with pytest.raises(InvalidArgument, match=r"input 'image' has 30 elements .* limit of 29"):
        validate_arrays(SPEC_2D, good(), Limits(max_elements=29))
    with pytest.raises(InvalidArgument, match="at most 5 elements per axis"):
        validate_arrays(SPEC_2D, good(), Limits(max_dim=5))
    assert validate_arrays(SPEC_2D, good(), Limits(max_elements=30, max_dim=6))["image"].shape == (6, 5, 1)


def test_lists_are_cast_when_asked_and_arrays_pass_through():
    inputs = good()
    out = validate_arrays(SPEC_2D, inputs)
    assert out["image"] is inputs["image"]
    cast = validate_arrays(SPEC_2D, {"image": inputs["image"].tolist(), "spacing": [1, 2]}, cast=True)
    assert cast["image"].dtype == np.float32 and cast["spacing"].tolist() == [1.0, 2.0]
    with pytest.raises(InvalidArgument, match="input 'image' cannot be read as float32"):
        validate_arrays(SPEC_2D, {"image": [[[1.0]], [[1.0, 2.0]]], "spacing": [1, 2]}, cast=True)


def protos(**arrays):
    return {name: tf.make_tensor_proto(value) for name, value in arrays.items()}


def test_tensor_protos_decode_and_check_before_decoding():
    inputs = good()
    out = validate_tensor_protos(SPEC_2D, protos(**inputs))
    np.testing.assert_array_equal(out["image"], inputs["image"])
    bad = protos(**with_(image=inputs["image"].astype(np.float64)))
    with pytest.raises(InvalidArgument, match="input 'image' must be float32, got float64"):
        validate_tensor_protos(SPEC_2D, bad)
    # A header claiming a huge shape is refused without decoding anything.
    huge = protos(**inputs)
    huge["image"].tensor_shape.dim[0].size = 60000
    huge["image"].tensor_shape.dim[1].size = 60000
    with pytest.raises(InvalidArgument, match=r"input 'image' has 3600000000 elements"):
        validate_tensor_protos(SPEC_2D, huge)
    # Content that does not fit the declared shape.
    short = protos(**inputs)
    short["image"].tensor_shape.dim[0].size = 7
    with pytest.raises(InvalidArgument, match=r"input 'image': tensor content does not match shape \[7, 5, 1\]"):
        validate_tensor_protos(SPEC_2D, short)
    unknown = protos(**inputs)
    unknown["spacing"].tensor_shape.unknown_rank = True
    with pytest.raises(InvalidArgument, match="input 'spacing' has no shape"):
        validate_tensor_protos(SPEC_2D, unknown)


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


def test_tensorflow_errors_become_status_codes(toy):
    inputs = good()
    inputs["image"][0, 0, 0] = 2e6  # the toy graph asserts max < 1e6
    with pytest.raises(InvalidArgument, match="the model rejected the request: .*image maximum must be < 1e6"):
        toy.predict_arrays("serving_default", inputs)
    with pytest.raises(NotFound, match="has no signature 'nope'"):
        toy.predict_arrays("nope", inputs)
    assert code_of(Internal("x")) == "INTERNAL" and code_of(ValueError("x")) == "INTERNAL"
    # The model still answers after the failure.
    assert toy.predict_arrays("serving_default", good())["present"].shape == (3,)
