"""lmk_tf.evaluation.report measures errors in mm through each image's own, anisotropic spacing."""

import json

import numpy as np
import pytest

from lmk_tf.data.sources import Sample
from lmk_tf.evaluation.report import evaluate
from lmk_tf.image import Image


class OffByOnePixel:
    """Answers like a LocalModel: landmark 0 one row off, landmark 1 one column off."""

    landmark_names = ["a", "b"]
    path = "stand-in"

    def __init__(self, truth):
        self.truth = truth

    def predict(self, inputs):
        assert inputs["image"].shape[-1] == 1
        return {"landmarks_index": self.truth + np.array([[1.0, 0.0], [0.0, 1.0]]), "present": np.ones(2, bool)}


def test_errors_use_each_axis_spacing(tmp_path):
    truth = np.array([[10.0, 20.0], [30.0, 5.0]])
    image = Image(np.zeros((40, 30), np.float32), spacing=(0.5, 2.0))  # rows 0.5 mm, columns 2 mm
    samples = [Sample("x", lambda: image, truth)]
    summary = evaluate(OffByOnePixel(truth), samples, ["a", "b"], str(tmp_path), overlays=0, log=None)
    # One row is 0.5 mm, one column 2 mm: swapped or isotropic spacing gives other numbers.
    assert summary["per_landmark"]["a"]["mre"] == pytest.approx(0.5)
    assert summary["per_landmark"]["b"]["mre"] == pytest.approx(2.0)
    assert json.loads((tmp_path / "summary.json").read_text())["overall"]["mre"] == pytest.approx(1.25)
