"""lmk_tf.serving.client result shaping: the predicted error when the model has it, review marks."""

import numpy as np
import pytest

from lmk_tf.errors import ModelError
from lmk_tf.image import Image
from lmk_tf.io.answers import format_text as format_results
from lmk_tf.serving.client import shape_results
from pipelines.review import mark_for_review, review_line


def outputs(with_errors=True):
    out = {
        "landmarks_index": np.array([[1.0, 2.0], [3.0, 4.0]], np.float32),
        "landmarks_mm": np.array([[0.5, 1.0], [1.5, 2.0]], np.float32),
        "confidence": np.array([0.9, 0.2], np.float32),
        "present": np.array([True, True]),
    }
    if with_errors:
        out["expected_error_mm"] = np.array([0.8, 4.5], np.float32)
        out["radius90_mm"] = np.array([1.6, 9.0], np.float32)
    return out


IMAGE = Image(np.zeros((8, 8), np.float32), spacing=(0.5, 0.5))


def test_predicted_error_travels_with_each_landmark_and_review_marks_the_doubtful():
    result = shape_results(outputs(), IMAGE, ["a", "b"])
    assert [lm["expected_error_mm"] for lm in result["landmarks"]] == pytest.approx([0.8, 4.5])
    assert [lm["radius90_mm"] for lm in result["landmarks"]] == pytest.approx([1.6, 9.0])
    assert mark_for_review(result, 3.0) == (1, 2)
    assert [lm["review"] for lm in result["landmarks"]] == [False, True]
    assert review_line(1, 2, 3.0).startswith("1 of 2 landmarks have an expected error above 3 mm")
    rows = format_results({"file": "x.png", **result}, "csv").splitlines()
    header = rows[0].split(",")
    assert header[-3:] == ["expected_error_mm", "radius90_mm", "review"]
    assert rows[2].split(",")[-3:] == ["4.5", "9", "1"]


def test_an_older_model_without_the_error_outputs_still_answers():
    result = shape_results(outputs(with_errors=False), IMAGE, ["a", "b"])
    assert "expected_error_mm" not in result["landmarks"][0]
    assert mark_for_review(result, 3.0) == (0, 0)
    assert "predicts no error" in review_line(0, 0, 3.0)
    assert format_results(result, "csv").splitlines()[1].endswith(",,,")


def test_missing_landmark_outputs_are_named():
    out = outputs()
    del out["present"]
    with pytest.raises(ModelError, match="lack 'present'"):
        shape_results(out, IMAGE)
