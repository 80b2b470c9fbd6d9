"""The predicted error's figures (lmk_tf.evaluation.plots), shared by the report and the ISBI calibration."""

import numpy as np
import pytest
from PIL import Image as PILImage

from lmk_tf.errors import ConfigError
from lmk_tf.evaluation import plots


def _png_size(path):
    with PILImage.open(path) as picture:
        assert picture.format == "PNG"
        return picture.size


def test_risk_coverage_curves_keep_the_least_doubtful_first():
    expected = np.array([3.0, 1.0, 2.0, 4.0])
    errors = np.array([1.0, 4.0, 2.0, 5.0])
    kept, mre, oracle = plots.risk_coverage_curves(expected, errors)
    np.testing.assert_allclose(kept, [25, 50, 75, 100])
    # By rising expected the errors come 4, 2, 1, 5; the oracle takes 1, 2, 4, 5.
    np.testing.assert_allclose(mre, [4.0, 3.0, 7 / 3, 3.0])
    np.testing.assert_allclose(oracle, [1.0, 1.5, 7 / 3, 3.0])


def test_figures_are_written_at_the_calibration_pages_size(tmp_path):
    rng = np.random.default_rng(0)
    expected = rng.gamma(2.0, 0.5, 200)
    errors = expected * rng.gamma(4.0, 0.25, 200)
    assert _png_size(plots.plot_calibration(expected, errors, tmp_path / "a" / "calibration.png")) == (540, 480)
    assert _png_size(plots.plot_risk_coverage(expected, errors, tmp_path / "risk_coverage.png")) == (540, 480)
    # Fewer landmarks than bins still draws.
    assert _png_size(plots.plot_calibration([1.0, 2.0], [1.5, 1.0], tmp_path / "two.png", dpi=50)) == (225, 200)


@pytest.mark.parametrize("expected, errors, message", [
    ([1.0, 2.0], [1.0], r"expected \(2 values\) and errors \(1\) must pair up"),
    ([], [], "no landmarks to plot"),
    ([1.0, 2.0], [1.0, np.inf], "must be finite: pass only the landmarks found in both truth and prediction"),
    ([np.nan, 2.0], [1.0, 1.0], "must be finite"),
])
def test_figures_refuse_what_cannot_be_compared(tmp_path, expected, errors, message):
    for plot in (plots.plot_calibration, plots.plot_risk_coverage):
        with pytest.raises(ConfigError, match=message):
            plot(expected, errors, tmp_path / "bad.png")
    assert not (tmp_path / "bad.png").exists()
