"""Held-out prediction files: written, read back, and read when written before a signal existed."""

import csv

import numpy as np
import pytest

from lmk_tf.errors import ConfigError
from lmk_tf.evaluation.predictions import COLUMNS, read_predictions_csv, write_predictions_csv
from lmk_tf.method.uncertainty import FEATURES


def row(image, landmark, error):
    return {"image": image, "landmark": landmark, "truth_index": "1.000 2.000", "pred_index": "1.500 2.000",
            "error_mm": error, "confidence": 1.0, "present": 1, "expected_error_mm": 0.8, "radius90_mm": 2.0,
            **{f: 0.5 for f in FEATURES}}


def test_rows_read_back_as_arrays(tmp_path):
    path = write_predictions_csv(str(tmp_path / "kfold" / "fold0.csv"), [row("a.png", "sella", 0.25),
                                                                        row("a.png", "nasion", 1.5)])
    data = read_predictions_csv(path)
    assert list(data["landmark"]) == ["sella", "nasion"]
    np.testing.assert_allclose(data["error_mm"], [0.25, 1.5])
    np.testing.assert_allclose(data["pred_index"], [[1.5, 2.0], [1.5, 2.0]])
    assert set(FEATURES) <= set(data)


def test_a_file_from_before_a_signal_existed_reads_without_it_and_a_file_missing_more_is_refused(tmp_path):
    old = [c for c in COLUMNS if c != "shape_mm"]
    path = tmp_path / "fold1.csv"
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=old)
        writer.writeheader()
        writer.writerow({k: v for k, v in row("b.png", "sella", 0.5).items() if k in old})
    data = read_predictions_csv(str(path))
    assert "shape_mm" not in data and data["local_spread_mm"][0] == 0.5
    path.write_text("image,landmark\nb.png,sella\n")
    with pytest.raises(ConfigError, match="missing.*error_mm"):
        read_predictions_csv(str(path))


def test_a_value_that_is_not_a_number_is_refused_naming_the_file_and_column(tmp_path):
    path = tmp_path / "fold2.csv"
    write_predictions_csv(str(path), [{**row("c.png", "sella", 0.5), "error_mm": ""}])
    with pytest.raises(ConfigError, match="fold2.csv: column error_mm holds a value that is not a number"):
        read_predictions_csv(str(path))
