"""lmk_tf.method.uncertainty: vote spread, and a calibration that recovers a known error law."""

import numpy as np
import pytest

from lmk_tf.method.uncertainty import (
    FEATURES,
    apply_calibration,
    default_calibration,
    fit_calibration,
    predict_error,
    vote_spread,
)


def test_vote_spread_is_the_weighted_rms_distance_of_the_votes():
    # 2x2 grid, stride 1, one landmark: cell centres (0,0) (0,1) (1,0) (1,1); all vote for themselves.
    disp = np.zeros((1, 2, 2, 2), np.float32)
    prob = np.array([1.0, 0.5, 0.5, 0.0], np.float32).reshape(1, 2, 2, 1)
    position = np.array([[[0.25, 0.25]]], np.float32)
    # weights over the peak: 1, .5, .5, 0; squared distances .125, .625, .625
    expected = np.sqrt((1 * 0.125 + 0.5 * 0.625 + 0.5 * 0.625) / 2.0)
    np.testing.assert_allclose(np.asarray(vote_spread(disp, prob, position, 1)), [[expected]], rtol=1e-6)


def synthetic_rows(n, num_landmarks, seed):
    rng = np.random.default_rng(seed)
    x = rng.lognormal(0.0, 0.6, size=(n, len(FEATURES)))
    lm = rng.integers(0, num_landmarks, n)
    # A known law: the error grows with local spread and shift, scaled per landmark.
    scale = np.linspace(0.8, 1.6, num_landmarks)[lm]
    err = scale * x[:, 0] ** 0.8 * x[:, 5] ** 0.3 * rng.lognormal(0, 0.3, n)
    return x, lm, err


def test_fit_ranks_and_covers_on_new_rows():
    x, lm, err = synthetic_rows(4000, 5, 0)
    cal = fit_calibration(x, lm, err, 5)
    assert cal["weights"][0] == pytest.approx(0.8, abs=0.1)
    assert cal["weights"][5] == pytest.approx(0.3, abs=0.1)
    xt, lt, et = synthetic_rows(4000, 5, 1)
    expected, radius = predict_error(xt, lt, cal)
    assert abs(expected.mean() - et.mean()) / et.mean() < 0.08
    assert 0.87 <= (et <= radius).mean() <= 0.93


def assert_graph_matches_numpy(rows, cal):
    """The in-graph map and its numpy twin agree on `rows` [3, features], row l being landmark l's."""
    signals = {f: rows[:, i].astype(np.float32) for i, f in enumerate(FEATURES)}
    graph_expected, graph_radius = apply_calibration(signals, cal)
    np_expected, np_radius = predict_error(rows, np.arange(3), cal)
    np.testing.assert_allclose(np.asarray(graph_expected), np_expected, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(graph_radius), np_radius, rtol=1e-4)


def test_graph_and_numpy_maps_agree():
    x, lm, err = synthetic_rows(500, 3, 2)
    assert_graph_matches_numpy(x[:3], fit_calibration(x, lm, err, 3))


def test_default_calibration_uses_the_local_spread():
    cal = default_calibration(2)
    signals = {f: np.full([2], 0.5 if f == "local_spread_mm" else 9.0, np.float32) for f in FEATURES}
    expected, radius = apply_calibration(signals, cal)
    np.testing.assert_allclose(np.asarray(expected), [0.5, 0.5], rtol=1e-5)
    np.testing.assert_allclose(np.asarray(radius), [1.25, 1.25], rtol=1e-5)


def test_too_few_rows_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 20"):
        fit_calibration(np.ones((5, len(FEATURES))), np.zeros(5, int), np.ones(5), 1)


def test_a_fit_on_some_signals_lists_them_and_maps_only_them():
    x, lm, err = synthetic_rows(800, 3, 3)
    names = ["local_spread_mm", "shift_mm"]
    cal = fit_calibration(x[:, [0, 5]], lm, err, 3, feature_names=names)
    assert cal["features"] == names and len(cal["weights"]) == 2
    # One image's three landmarks, every signal given; the map reads the two it was fitted on.
    signals = {f: x[:3, i].astype(np.float32) for i, f in enumerate(FEATURES)}
    expected, _ = apply_calibration(signals, cal)
    np.testing.assert_allclose(np.asarray(expected), predict_error(x[:3, [0, 5]], np.arange(3), cal)[0], rtol=1e-4)
    with pytest.raises(ValueError, match=r"features must be \[N, 2\]"):
        fit_calibration(x, lm, err, 3, feature_names=names)


def hinge_rows(n, seed):
    """Errors that follow the local spread and, once global_local_mm passes its 90th percentile
    (a local stage that moved the global estimate unusually far), grow with its square too."""
    rng = np.random.default_rng(seed)
    x = rng.lognormal(0.0, 0.6, size=(n, len(FEATURES)))
    lm = rng.integers(0, 3, n)
    beyond = np.maximum(np.log(x[:, 2]) - 0.6 * 1.2816, 0.0)  # past the lognormal's 90th percentile
    err = x[:, 0] ** 0.5 * np.exp(2.0 * beyond) * rng.lognormal(0, 0.2, n)
    return x, lm, err


def test_a_signal_beyond_its_knot_says_more_than_its_linear_weight(monkeypatch):
    import lmk_tf.method.uncertainty as uncertainty

    x, lm, err = hinge_rows(4000, 3)
    cal = fit_calibration(x, lm, err, 3)
    assert len(cal["knots"]) == len(cal["hinge_weights"]) == len(FEATURES)
    assert cal["knots"][2] == pytest.approx(0.6 * 1.2816, abs=0.1)  # log of the 90th percentile
    assert cal["hinge_weights"][2] == pytest.approx(2.0, abs=0.3)
    assert max(abs(h) for h in np.delete(cal["hinge_weights"], 2)) < 0.2
    monkeypatch.setattr(uncertainty, "HINGE_MIN_ROWS", 10**9)
    linear = fit_calibration(x, lm, err, 3)
    assert "knots" not in linear
    # On new rows far past the knot, the linear map says too little; the hinged one does not.
    xt, lt, et = hinge_rows(4000, 4)
    far = xt[:, 2] > np.exp(0.6 * 1.2816 + 0.5)
    assert 0.8 < np.median(et[far] / predict_error(xt[far], lt[far], cal)[0]) < 1.25
    assert np.median(et[far] / predict_error(xt[far], lt[far], linear)[0]) > 1.4
    # The graph applies the hinges as numpy does, on rows beyond the knot and below it.
    assert_graph_matches_numpy(np.concatenate([xt[far][:2], xt[xt[:, 2] < 1.0][:1]]), cal)


def test_a_small_calibration_set_fits_no_hinges():
    x, lm, err = hinge_rows(199, 5)
    assert "knots" not in fit_calibration(x, lm, err, 3)
    assert "knots" in fit_calibration(*hinge_rows(200, 5), 3)
