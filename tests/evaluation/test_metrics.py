"""Metrics against hand-computed numbers, and the reports written from them."""

import csv
import math

import numpy as np
import pytest
from PIL import Image as PILImage

from lmk_tf.errors import ConfigError
from lmk_tf.evaluation import metrics as evaluation
from lmk_tf.evaluation import plots

NAN, INF = float("nan"), float("inf")


def test_radial_errors_are_euclidean_in_mm():
    pred = np.array([[[3.0, 4.0], [1.0, 1.0]]])
    true = np.array([[[0.0, 0.0], [1.0, 1.0]]])
    np.testing.assert_allclose(evaluation.radial_errors(pred, true), [[5.0, 0.0]])
    # One image given as [L, D].
    np.testing.assert_allclose(evaluation.radial_errors(pred[0], true[0]), [[5.0, 0.0]])
    pred3 = np.array([[[1.0, 2.0, 2.0]]])
    np.testing.assert_allclose(evaluation.radial_errors(pred3, np.zeros((1, 1, 3))), [[3.0]])


def test_radial_errors_missing_truth_and_absent_predictions():
    pred = np.array([[[0.0, 0.0], [NAN, NAN], [0.0, 0.0], [1.0, 0.0]]])
    true = np.array([[[NAN, NAN], [0.0, 0.0], [2.0, 0.0], [0.0, 0.0]]])
    errors = evaluation.radial_errors(
        pred, true, pred_present=[[True, True, False, True]], true_present=[[True, True, True, False]]
    )
    # no truth -> NaN; NaN prediction -> inf; present=False -> inf; truth flagged absent -> NaN
    assert math.isnan(errors[0, 0])
    assert errors[0, 1] == INF
    assert errors[0, 2] == INF
    assert math.isnan(errors[0, 3])


def test_radial_errors_rejects_mismatched_shapes():
    with pytest.raises(ConfigError, match=r"\(1, 2, 2\).*\(1, 3, 2\)"):
        evaluation.radial_errors(np.zeros((1, 2, 2)), np.zeros((1, 3, 2)))


def test_summary_of_one_to_four():
    errors = np.array([[1.0], [2.0], [3.0], [4.0]])
    summary = evaluation.summarize(errors, ["a"])
    overall = summary["overall"]
    assert overall["mre"] == pytest.approx(2.5)
    assert overall["sd"] == pytest.approx(math.sqrt(1.25))  # population SD
    assert overall["median"] == pytest.approx(2.5)
    assert overall["max"] == 4.0
    assert overall["sdr"] == {2.0: 50.0, 2.5: 50.0, 3.0: 75.0, 4.0: 100.0}
    assert (overall["n"], overall["n_truth"], overall["missed"]) == (4, 4, 0)
    assert summary["per_landmark"]["a"] == overall
    assert summary["n_images"] == 4 and summary["thresholds"] == [2.0, 2.5, 3.0, 4.0]


def test_summary_per_landmark_and_overall():
    errors = np.array([[1.0, 10.0], [3.0, 20.0]])
    summary = evaluation.summarize(errors, ["a", "b"], thresholds=(2.0, 15.0))
    assert summary["per_landmark"]["a"]["mre"] == pytest.approx(2.0)
    assert summary["per_landmark"]["b"]["mre"] == pytest.approx(15.0)
    assert summary["per_landmark"]["b"]["sdr"] == {2.0: 0.0, 15.0: 50.0}
    assert summary["overall"]["mre"] == pytest.approx(8.5)
    assert summary["overall"]["median"] == pytest.approx(6.5)
    assert summary["overall"]["sdr"] == {2.0: 25.0, 15.0: 75.0}


def test_summary_counts_misses_and_false_detections():
    # a: 1 mm, missed, 3 mm, no truth (but predicted present: a false detection)
    errors = np.array([[1.0], [INF], [3.0], [NAN]])
    present = np.array([[True], [False], [True], [True]])
    summary = evaluation.summarize(errors, ["a"], predicted_present=present)
    a = summary["per_landmark"]["a"]
    assert a["mre"] == pytest.approx(2.0)  # misses are not averaged
    assert (a["n"], a["n_truth"], a["missed"], a["false_detections"]) == (2, 3, 1, 1)
    # ... but they fail every radius: 1 of 3 within 2 mm, 2 of 3 within 4 mm.
    assert a["sdr"][2.0] == pytest.approx(100 / 3)
    assert a["sdr"][4.0] == pytest.approx(200 / 3)
    # Without presence flags false detections cannot be known.
    assert evaluation.summarize(errors, ["a"])["overall"]["false_detections"] == 0


def test_summary_with_nothing_to_average():
    summary = evaluation.summarize(np.array([[NAN, INF]]), ["a", "b"])
    assert math.isnan(summary["per_landmark"]["a"]["mre"])
    assert math.isnan(summary["per_landmark"]["a"]["sdr"][2.0])
    assert summary["per_landmark"]["b"]["sdr"][2.0] == 0.0
    assert summary["per_landmark"]["b"]["missed"] == 1


@pytest.mark.parametrize(
    "errors, names, fragment",
    [
        (np.zeros((2, 3)), ["a", "b"], "(2, 3)"),
        (np.array([[-1.0]]), ["a"], "-1.0"),
        (np.zeros((1, 2)), ["a", "a"], "'a', 'a'"),
    ],
)
def test_summarize_rejects_bad_input(errors, names, fragment):
    with pytest.raises(ConfigError) as info:
        evaluation.summarize(errors, names)
    assert fragment in str(info.value)


def test_sdr_curve():
    errors = np.array([[1.0, INF], [3.0, NAN]])
    np.testing.assert_allclose(
        evaluation.sdr_curve(errors, [0.0, 1.0, 2.9, 3.0, 100.0]),
        [0.0, 100 / 3, 100 / 3, 200 / 3, 200 / 3],
    )


def test_errors_csv_round_trip(tmp_path):
    errors = np.array([[1.25, INF], [NAN, 0.5]])
    path = evaluation.write_errors_csv(tmp_path / "e" / "errors.csv", ["img1", "img2"], ["a", "b"], errors)
    with path.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["image_id", "landmark", "error_mm", "status"]
    assert rows[1:] == [
        ["img1", "a", "1.25", "ok"],
        ["img1", "b", "", "missed"],
        ["img2", "a", "", "no_truth"],
        ["img2", "b", "0.5", "ok"],
    ]
    ids, names, back = evaluation.read_errors_csv(path)
    assert ids == ["img1", "img2"] and names == ["a", "b"]
    np.testing.assert_array_equal(back, errors)  # NaN and inf included


def test_errors_csv_rejects_wrong_shape(tmp_path):
    with pytest.raises(ConfigError, match=r"\(3, 1\)"):
        evaluation.write_errors_csv(tmp_path / "x.csv", ["i"], ["a"], np.zeros((3, 1)))


def _parse_markdown(text):
    lines = [line for line in text.strip().splitlines()]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    return cells[0], cells[2:]


def test_markdown_table(tmp_path):
    errors = np.array([[1.0, 2.0], [2.0, INF], [3.0, 6.0], [4.0, 1.0]])
    summary = evaluation.summarize(errors, ["sella", "nasion"])
    second = evaluation.summarize(np.array([[0.5, 1.0], [1.5, 1.0]]), ["sella", "nasion"])
    path = evaluation.write_markdown_table(tmp_path / "table.md", summary, second)
    header, rows = _parse_markdown(path.read_text(encoding="utf-8"))
    assert header == [
        "Landmark",
        "MRE ± SD (mm)",
        "Median (mm)",
        "SDR 2 mm (%)",
        "SDR 2.5 mm (%)",
        "SDR 3 mm (%)",
        "SDR 4 mm (%)",
        "Missed",
        "False det.",
        "2nd annotator MRE ± SD (mm)",
    ]
    by_name = {row[0]: row for row in rows}
    assert by_name["sella"][1:7] == ["2.50 ± 1.12", "2.50", "50.0", "50.0", "75.0", "100.0"]
    assert by_name["sella"][9] == "1.00 ± 0.50"
    # nasion: 2, 6, 1 given and one miss -> MRE 3.00, SDR@2 = 2 of 4.
    assert by_name["nasion"][1] == "3.00 ± 2.16"
    assert by_name["nasion"][3] == "50.0" and by_name["nasion"][7] == "1"
    assert by_name["**All**"][1] == "2.71 ± 1.67"  # 1,2,3,4,2,6,1: SD sqrt(71/7 - (19/7)^2)
    assert by_name["**All**"][9] == "1.00 ± 0.35"
    # Without a second annotator there is no such column.
    header, _ = _parse_markdown(evaluation.format_markdown_table(summary))
    assert header[-1] == "False det."


def test_format_summary():
    summary = evaluation.summarize(np.array([[1.0], [2.0], [3.0], [4.0]]), ["a"])
    text = evaluation.format_summary(summary)
    assert text.startswith("4 images, 1 landmarks, 4 annotated: MRE 2.50 ± 1.12 mm")
    assert "2 mm 50.0%" in text and "4 mm 100.0%" in text
    assert "missed" not in text
    assert len(evaluation.format_summary(summary, per_landmark=True).splitlines()) == 2


def _png_size(path):
    assert path.stat().st_size > 1000
    with PILImage.open(path) as picture:
        assert picture.format == "PNG"
        return picture.size


def test_boxplot_and_sdr_curve_are_written(tmp_path):
    rng = np.random.default_rng(0)
    errors = rng.gamma(2.0, 1.0, size=(20, 4))
    errors[3, 1] = INF
    errors[4, 2] = NAN
    names = ["a", "b", "c", "d"]
    box = plots.plot_error_boxplot(errors, names, tmp_path / "box.png", figsize=(8, 4), dpi=50)
    assert _png_size(box) == (400, 200)
    curve = plots.plot_sdr_curve(
        errors, tmp_path / "sdr.png", second_annotator_errors=errors * 0.5, dpi=50
    )
    assert _png_size(curve) == (300, 200)
    with pytest.raises(ConfigError, match=r"\(20, 4\)"):
        plots.plot_error_boxplot(errors, names[:3], tmp_path / "bad.png")
