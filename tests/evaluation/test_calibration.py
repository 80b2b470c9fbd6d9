"""Fitting the served predicted error on validation images, and reading a fitted one back."""

import json

import numpy as np
import pytest

from lmk_tf.errors import ConfigError
from lmk_tf.evaluation import calibration
from lmk_tf.method.uncertainty import FEATURES
from tests.conftest import tiny_samples


@pytest.fixture(scope="module")
def fitted(tiny_model_dir):
    # Seed 11: images the tiny model never trained on (it trained on seed 3).
    samples, names = tiny_samples(n=6, seed=11)
    return calibration.fit_for_model_dir(tiny_model_dir, samples, names, presence_threshold=0.0), names


def test_a_fit_on_validation_images_is_a_calibration_the_export_takes(fitted, tiny_model_dir, tmp_path):
    from lmk_tf.export.savedmodel import export
    from lmk_tf.serving.local import LocalModel

    cal, names = fitted
    assert cal["features"] == list(FEATURES) and len(cal["intercepts"]) == len(names)
    assert cal["q90"] > 0 and cal["smear"] > 0
    assert "validation images" in cal["fitted_on"]
    path = export(tiny_model_dir, str(tmp_path / "calibrated"), calibration=cal, presence_threshold=0.0)
    image = tiny_samples(n=1, seed=12)[0][0].load()
    out = LocalModel(path).predict({"image": np.asarray(image.array, np.float32)[..., None],
                                    "spacing": np.asarray(image.spacing, np.float32)})
    # radius90 is the conformal multiple of the expected error the fit chose, not the 2.5x default.
    np.testing.assert_allclose(out["radius90_mm"], out["expected_error_mm"] * cal["q90"], rtol=1e-5)
    assert cal["q90"] != 2.5


def test_too_few_known_landmarks_is_refused_naming_the_count(tiny_model_dir):
    samples, names = tiny_samples(n=1, seed=11)
    with pytest.raises(ConfigError, match=r"at least 20 .* the 1 validation images gave \d+"):
        calibration.fit_for_model_dir(tiny_model_dir, samples, names, presence_threshold=0.0)


def test_a_calibration_file_reads_back_and_is_checked(fitted, tmp_path):
    cal, names = fitted
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps({"landmark_names": names, **cal}))
    assert calibration.read_calibration(str(path), names) == cal

    with pytest.raises(ConfigError, match="other landmarks"):
        calibration.read_calibration(str(path), list(reversed(names)))
    with pytest.raises(ConfigError, match="no such calibration file"):
        calibration.read_calibration(str(tmp_path / "missing.json"), names)
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        calibration.read_calibration(str(bad), names)
    bad.write_text(json.dumps({"weights": []}))
    with pytest.raises(ConfigError, match="not a calibration"):
        calibration.read_calibration(str(bad), names)
    bad.write_text(json.dumps({**cal, "intercepts": cal["intercepts"][:-1]}))
    with pytest.raises(ConfigError, match="intercepts for"):
        calibration.read_calibration(str(bad), names)
