"""lmk_tf.evaluation.uncertainty against hand-computed values."""

import json

import numpy as np
import pytest

from lmk_tf.evaluation.uncertainty import (
    auroc,
    calibration_bins,
    format_review,
    review_thresholds,
    risk_coverage,
    spearman,
    summarize_uncertainty,
)


def test_spearman_handles_ties_and_monotone_maps():
    a = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert spearman(a, a**3) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    # ties: ranks of [1, 1, 2] are [1.5, 1.5, 3]
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(np.corrcoef([1.5, 1.5, 3], [1, 2, 3])[0, 1])


def test_auroc_counts_pairs():
    score = np.array([0.1, 0.4, 0.35, 0.8])
    positive = np.array([False, False, True, True])
    # pairs (pos, neg): (0.35 vs 0.1) yes, (0.35 vs 0.4) no, (0.8 vs both) yes -> 3/4
    assert auroc(score, positive) == pytest.approx(0.75)
    assert auroc([1, 1], [True, False]) == pytest.approx(0.5)
    assert np.isnan(auroc([1, 2], [True, True]))


def test_bins_and_risk_coverage():
    pred = np.arange(10, dtype=float)
    err = np.arange(10, dtype=float) * 2
    bins = calibration_bins(pred, err, bins=2)
    assert [b["predicted_mm"] for b in bins] == [2.0, 7.0] and [b["actual_mm"] for b in bins] == [4.0, 14.0]
    rc = risk_coverage(pred, err, fractions=(1.0, 0.5))
    assert rc[0]["mre_mm"] == pytest.approx(9.0) and rc[1]["mre_mm"] == pytest.approx(4.0)
    s = summarize_uncertainty(pred, pred * 2, err)
    assert s["coverage90"] == pytest.approx(1.0) and s["spearman"] == pytest.approx(1.0)


def test_summary_is_plain_json():
    # The evaluation report stores it in summary.json as it is.
    rng = np.random.default_rng(1)
    err = rng.gamma(2.0, 1.0, 30)
    s = summarize_uncertainty(err * 1.1, err * 2.0, err)
    assert json.loads(json.dumps(s)) == s
    assert len(s["calibration"]) == 10 and [b["kept"] for b in s["risk_coverage"]] == [1.0, 0.95, 0.9, 0.8, 0.7, 0.5]


def test_review_thresholds_say_what_each_would_flag_and_leave():
    expected = np.array([0.5, 0.8, 1.2, 1.6, 2.5, 3.5])
    errors = np.array([0.4, 5.0, 1.0, 4.5, 2.0, 6.0])
    rows = review_thresholds(expected, errors, thresholds=(1.0, 3.0, 4.0))
    assert [r["flagged"] for r in rows] == pytest.approx([4 / 6, 1 / 6, 0.0])
    assert [(r["gross_caught"], r["gross"]) for r in rows] == [(2, 3), (1, 3), (0, 3)]
    assert rows[0]["kept_mre_mm"] == pytest.approx(2.7) and rows[0]["kept_max_mm"] == 5.0
    assert rows[2]["kept_mre_mm"] == pytest.approx(errors.mean())
    everything = review_thresholds(expected, errors, thresholds=(0.1,))[0]
    assert everything["flagged"] == 1.0 and np.isnan(everything["kept_mre_mm"])
    text = format_review(rows[:1] + [everything])
    assert text.splitlines()[0] == ("--review_mm=1: flags 66.7 % of the landmarks, 2 of the 3 > 4 mm among them; "
                                    "the rest MRE 2.700 mm, max 5.000 mm")
    assert "the rest MRE n/a mm, max n/a mm" in text.splitlines()[1]
