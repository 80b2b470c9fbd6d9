"""The evaluation report of an exported model, run as served (LocalModel)."""

import csv
import io
import json
import os

import numpy as np
import pytest
from PIL import Image as PILImage

from lmk_tf.data.sources import Sample
from lmk_tf.errors import ConfigError, ModelError
from lmk_tf.evaluation.metrics import format_summary, read_errors_csv
from lmk_tf.evaluation.report import evaluate
from lmk_tf.export.savedmodel import export
from lmk_tf.image import Image
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


def test_report_judges_the_served_models_predicted_error(served, tmp_path):
    samples, names = tiny_samples(n=3, seed=8)
    summary = evaluate(served, samples, names, str(tmp_path), overlays=0, log=None)
    _, _, errors = read_errors_csv(tmp_path / "errors.csv")
    assert summary["uncertainty"]["n"] == int(np.isfinite(errors).sum()) > 0
    # As text: an AUROC with no error above its threshold is NaN, which equals nothing.
    stored = json.load(open(tmp_path / "summary.json"))["uncertainty"]
    assert json.dumps(stored) == json.dumps(summary["uncertainty"])
    rows = _csv_rows(tmp_path / "uncertainty.csv")
    out = served.predict_image(samples[0].load())
    first = {r["landmark"]: float(r["expected_error_mm"]) for r in rows if r["image"] == samples[0].image_id}
    assert first == pytest.approx({lm["name"]: lm["expected_error_mm"] for lm in out["landmarks"]
                                   if lm["name"] in first}, rel=1e-5)
    for name in ("calibration.png", "risk_coverage.png"):
        assert _png_size(tmp_path / name) == (540, 480)


# --------------------------------------------------------------------------
# A stand-in model with hand-chosen errors and predicted errors.

IMAGES, LANDMARKS = ["p", "q", "r", "s"], ["a", "b"]
TRUTH = np.array([[10.0, 10.0], [20.0, 5.0]])
# Per image and landmark: (actual error mm, expected_error_mm, radius90_mm); None: reported absent.
ANSWERS = [
    [(1.0, 1.5, 3.0), (3.0, 1.2, 2.5)],
    [(2.0, 1.0, 2.5), None],
    [(5.0, 4.0, 6.0), (0.5, 0.5, 1.0)],
    [(0.2, 0.1, 0.3), (0.2, 0.1, 0.3)],  # image s has no truth: never compared
]


class PredictsItsError:
    """Answers like a LocalModel: each landmark moved down its error in rows (1 mm pixels)."""

    landmark_names = LANDMARKS
    path = "stand-in"

    def __init__(self, uncertainty=True):
        self.uncertainty = uncertainty

    def predict(self, inputs):
        answer = ANSWERS[int(inputs["image"][0, 0, 0])]
        index = TRUTH + np.array([[a[0] if a else 0.0, 0.0] for a in answer])
        out = {"landmarks_index": index, "present": np.array([a is not None for a in answer])}
        if self.uncertainty:
            out["expected_error_mm"] = np.array([a[1] if a else 9.0 for a in answer])
            out["radius90_mm"] = np.array([a[2] if a else 9.0 for a in answer])
        return out


def _samples():
    def sample(i):
        image = Image(np.full((32, 32), float(i), np.float32), spacing=(1.0, 1.0))
        points = TRUTH if IMAGES[i] != "s" else np.full_like(TRUTH, np.nan)
        return Sample(IMAGES[i], lambda: image, points)

    return [sample(i) for i in range(len(IMAGES))]


def _csv_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _png_size(path):
    with PILImage.open(path) as picture:
        assert picture.format == "PNG"
        return picture.size


def test_predicted_error_figures_match_a_hand_computation(tmp_path):
    summary = evaluate(PredictsItsError(), _samples(), LANDMARKS, str(tmp_path), overlays=0, log=None)
    u = summary["uncertainty"]
    # Compared: p/a, p/b, q/a, r/a, r/b (q/b was missed, s has no truth).
    # Ranks of expected [1.5, 1.2, 1.0, 4.0, 0.5] are [4, 3, 2, 5, 1], of the errors [2, 4, 3, 5, 1]:
    # rho = 1 - 6 * (4 + 1 + 1) / (5 * 24) = 0.7.
    assert u["n"] == 5 and u["spearman"] == pytest.approx(0.7)
    # > 2 mm: p/b (1.2) and r/a (4.0) against 1.5, 1.0, 0.5: 2 + 3 of 6 pairs; > 4 mm: r/a above all.
    assert u["auroc_2mm"] == pytest.approx(5 / 6) and u["auroc_4mm"] == pytest.approx(1.0)
    # Only p/b (3.0 > 2.5) falls outside its radius; radii 3, 2.5, 2.5, 6, 1.
    assert u["coverage90"] == pytest.approx(0.8) and u["median_radius90_mm"] == pytest.approx(2.5)
    assert [(b["predicted_mm"], b["actual_mm"]) for b in u["calibration"]] == [
        (0.5, 0.5), (1.0, 2.0), (1.2, 3.0), (1.5, 1.0), (4.0, 5.0)]
    # Errors by rising expected: 0.5, 2, 3, 1, 5; keeping 5, 5, 4, 4, 4, 2 of them.
    assert [b["mre_mm"] for b in u["risk_coverage"]] == pytest.approx([2.3, 2.3, 1.625, 1.625, 1.625, 1.25])
    assert [b["max_mm"] for b in u["risk_coverage"]] == [5.0, 5.0, 3.0, 3.0, 3.0, 2.0]
    assert json.loads((tmp_path / "summary.json").read_text())["uncertainty"] == u

    rows = _csv_rows(tmp_path / "uncertainty.csv")
    assert [(r["image"], r["landmark"], r["within_radius90"]) for r in rows] == [
        ("p", "a", "1"), ("p", "b", "0"), ("q", "a", "1"), ("r", "a", "1"), ("r", "b", "1")]
    values = [[float(r[k]) for k in ("error_mm", "expected_error_mm", "radius90_mm")] for r in rows]
    np.testing.assert_allclose(values, [[1.0, 1.5, 3.0], [3.0, 1.2, 2.5], [2.0, 1.0, 2.5], [5.0, 4.0, 6.0],
                                        [0.5, 0.5, 1.0]])
    # errors.csv is unchanged: every image x landmark, no predicted error.
    assert len(_csv_rows(tmp_path / "errors.csv")) == 8
    assert set(_csv_rows(tmp_path / "errors.csv")[0]) == {"image_id", "landmark", "error_mm", "status"}

    page = (tmp_path / "uncertainty.md").read_text()
    assert "Over the 5 landmarks found in both truth and prediction." in page
    assert "| 0.700 | 0.833 | 1.000 | 80.0 | 2.50 |" in page
    assert "| 3 | 1 | 1.20 | 3.00 |" in page and "| 90 | 1.62 | 3.00 |" in page
    assert "calibration" not in (tmp_path / "summary.md").read_text()
    for name in ("calibration.png", "risk_coverage.png"):
        assert _png_size(tmp_path / name) == (540, 480)

    last = format_summary(summary, per_landmark=True).splitlines()[-1]
    assert last == ("predicted error: Spearman 0.700, AUROC >2 mm 0.833, >4 mm 1.000, radius90 coverage 80.0 % "
                    "(median radius 2.50 mm), n=5")


def test_a_model_without_predicted_error_gets_the_report_as_before(tmp_path):
    evaluate(PredictsItsError(), _samples(), LANDMARKS, str(tmp_path), overlays=0, log=None)
    before = {name: (tmp_path / name).read_bytes() for name in ("errors.csv", "summary.md")}
    log = io.StringIO()
    summary = evaluate(PredictsItsError(uncertainty=False), _samples(), LANDMARKS, str(tmp_path), overlays=0,
                       log=log)
    assert "uncertainty" not in summary and "uncertainty" not in json.loads((tmp_path / "summary.json").read_text())
    assert {name: (tmp_path / name).read_bytes() for name in before} == before
    # Rewritten in place: none of the earlier model's uncertainty files remain.
    for name in ("uncertainty.csv", "calibration.png", "risk_coverage.png"):
        assert not (tmp_path / name).exists(), name
    lines = (tmp_path / "uncertainty.md").read_text().splitlines()
    assert len(lines) == 1 and "stand-in predicts no error of its own" in lines[0]
    assert log.getvalue().count("no evaluation of the predicted error") == 1
    assert "predicted error" not in format_summary(summary, per_landmark=True)


def test_half_the_predicted_error_is_refused(tmp_path):
    class OnlyExpected(PredictsItsError):
        def predict(self, inputs):
            out = super().predict(inputs)
            del out["radius90_mm"]
            return out

    with pytest.raises(ModelError, match="stand-in: the model answers expected_error_mm without radius90_mm"):
        evaluate(OnlyExpected(), _samples(), LANDMARKS, str(tmp_path), overlays=0, log=None)
