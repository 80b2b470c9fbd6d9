"""benchmarks/isbi2015_doctors.py on the ISBI-like stand-in, whose junior doctor marks every point
1 px right and down of the senior's: predictions on the senior's points are 0 mm from the senior,
sqrt(2) mm from the junior and half that from their mean."""

import math

import numpy as np

from lmk_tf.evaluation.predictions import write_predictions_csv
from lmk_tf.io.landmark_tables import read_landmark_table
from lmk_tf.method.uncertainty import FEATURES
from tests.conftest import run_in_repo as run


def doctors(data, predictions):
    return run("benchmarks/isbi2015_doctors.py", f"--data={data}", f"--predictions={predictions}", "--spacing=1.0")


def write_fold(path, senior, images, *, error_mm):
    rows = []
    for image in images:
        marks = senior[image]
        for name, point in zip(marks.names, marks.points):
            index = " ".join(f"{v:.3f}" for v in point)
            rows.append({"image": image, "landmark": name, "truth_index": index, "pred_index": index,
                         "error_mm": error_mm, "confidence": 1.0, "present": 1, "expected_error_mm": 1.0,
                         "radius90_mm": 2.0, **dict.fromkeys(FEATURES, 0.5)})
    write_predictions_csv(path, rows)


def test_the_model_against_each_doctor_and_the_doctors_against_each_other(isbi_like, tmp_path):
    senior = read_landmark_table(isbi_like / "senior.csv")
    images = sorted(senior)
    half = math.sqrt(2) / 2
    write_fold(tmp_path / "fold0.csv", senior, images[:4], error_mm=half)
    write_fold(tmp_path / "fold1.csv", senior, images[4:], error_mm=half)
    p = doctors(isbi_like, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    landmarks = sum(len(senior[i].names) for i in images)
    assert f"2 fold file(s), {landmarks} landmarks of {len(images)} images" in p.stdout
    figures = dict(item.split("=") for item in p.stdout.strip().splitlines()[-1].split())
    np.testing.assert_allclose(float(figures["doctors_apart_mm"]), math.sqrt(2), atol=1e-3)
    np.testing.assert_allclose(float(figures["senior_mm"]), 0.0, atol=1e-3)
    np.testing.assert_allclose(float(figures["junior_mm"]), math.sqrt(2), atol=1e-3)
    np.testing.assert_allclose(float(figures["model_mm"]), half, atol=1e-3)
    assert figures["over4mm"] == "0"


def test_refusals_name_what_is_wrong_in_one_line(isbi_like, tmp_path):
    senior = read_landmark_table(isbi_like / "senior.csv")
    write_fold(tmp_path / "fold0.csv", {"999.png": next(iter(senior.values()))}, ["999.png"], error_mm=1.0)
    for data, predictions, message in ((isbi_like, tmp_path / "none", "no fold*.csv in"),
                                       (tmp_path / "nowhere", tmp_path, "senior.csv: no such file"),
                                       (isbi_like, tmp_path, "image 999.png of the predictions is not in senior.csv")):
        p = doctors(data, predictions)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert p.returncode != 0 and message in lines[-1] and "Traceback" not in p.stderr, p.stderr[-2000:]


def test_the_doctors_distance_as_one_more_signal_of_the_nested_calibration(isbi_like, tmp_path):
    # Doctors who disagree by an amount that varies by image and landmark, and errors equal to it:
    # with their distance as a signal the nested map ranks the errors perfectly; from the model's
    # signals alone (here constant) it can only rank landmarks by their typical error.
    from lmk_tf.io.landmark_tables import write_landmark_table
    from lmk_tf.io.landmarks import Landmarks

    senior = read_landmark_table(isbi_like / "senior.csv")
    images = sorted(senior)
    data = tmp_path / "data"
    data.mkdir()
    junior, rows = {}, {0: [], 1: []}
    for i, image in enumerate(images):
        marks = senior[image]
        apart = np.array([0.3 * (i + 1) * (j + 1) for j in range(len(marks.names))])
        junior[image] = Landmarks(marks.names, marks.points + np.stack([apart, np.zeros_like(apart)], axis=1))
        for name, point, e in zip(marks.names, marks.points, apart):
            index = " ".join(f"{v:.3f}" for v in point)
            rows[i % 2].append({"image": image, "landmark": name, "truth_index": index, "pred_index": index,
                                "error_mm": e, "confidence": 1.0, "present": 1, "expected_error_mm": 1.0,
                                "radius90_mm": 2.0, **dict.fromkeys(FEATURES, 0.5)})
    write_landmark_table(data / "senior.csv", senior)
    write_landmark_table(data / "junior.csv", junior)
    for k, fold_rows in rows.items():
        write_predictions_csv(tmp_path / f"fold{k}.csv", fold_rows)
    p = doctors(data, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "calibrated nested over the 2 fold files" in p.stdout
    figures = {k: float(v) for k, v in (item.split("=") for item in p.stdout.strip().splitlines()[-1].split())}
    assert figures["with_doctors_spearman"] > 0.99 and figures["with_doctors_auroc4"] == 1.0
    assert figures["signals_spearman"] < figures["with_doctors_spearman"] - 0.1
    assert figures["over4mm"] > 0


def test_one_fold_file_has_no_nested_figures(isbi_like, tmp_path):
    senior = read_landmark_table(isbi_like / "senior.csv")
    write_fold(tmp_path / "fold0.csv", senior, sorted(senior), error_mm=1.0)
    p = doctors(isbi_like, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "nested" not in p.stdout and "signals_spearman" not in p.stdout
