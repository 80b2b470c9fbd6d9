"""The evaluation report of an exported model, run as served (LocalModel)."""

import json
import os

import numpy as np
import pytest

from lmk_tf.errors import ConfigError
from lmk_tf.evaluation.metrics import read_errors_csv
from lmk_tf.evaluation.report import evaluate
from lmk_tf.export.savedmodel import export
from lmk_tf.serving.local import LocalModel
from tests.conftest import tiny_samples


@pytest.fixture(scope="module")
def served(tiny_model_dir, tmp_path_factory):
    return LocalModel(export(tiny_model_dir, str(tmp_path_factory.mktemp("saved") / "tiny")))


def test_report_holds_the_served_models_errors(served, tmp_path):
    samples, names = tiny_samples(n=3, seed=8)
    summary = evaluate(served, samples, names, str(tmp_path), overlays=1, log=None)
    for name in ("errors.csv", "summary.md", "summary.json", "errors_boxplot.png", "sdr_curve.png"):
        assert os.path.getsize(tmp_path / name) > 0, name
    assert os.listdir(tmp_path / "worst")
    assert json.load(open(tmp_path / "summary.json"))["n_images"] == 3 == summary["n_images"]
    ids, csv_names, errors = read_errors_csv(tmp_path / "errors.csv")
    assert csv_names == names and ids == [s.image_id for s in samples]
    image = samples[0].load()
    out = served.predict_image(image)
    pred_mm = np.array([lm["mm"] for lm in out["landmarks"]])
    expected = np.linalg.norm(pred_mm - samples[0].points * np.array(image.spacing), axis=-1)
    present = np.array([lm["present"] for lm in out["landmarks"]]) & np.isfinite(expected)
    np.testing.assert_allclose(errors[0][present], expected[present], rtol=1e-4)


def test_other_landmarks_than_the_models_are_refused(served, tmp_path):
    samples, names = tiny_samples(n=1)
    with pytest.raises(ConfigError, match=f"{served.path}: the model's landmark 0 is '{names[0]}' but "
                                          "the images' is 'nasion'"):
        evaluate(served, samples, ["nasion", *names[1:]], str(tmp_path), log=None)
    with pytest.raises(ConfigError, match="the model finds 6 landmarks but the images are annotated with 2"):
        evaluate(served, samples, names[:2], str(tmp_path), log=None)


def test_no_images_is_an_error(served, tmp_path):
    with pytest.raises(ConfigError, match="no images to evaluate"):
        evaluate(served, [], ["a"], str(tmp_path), log=None)
