"""What the model knows about its own error, and the calibration that turns it into mm.

The graph measures, per landmark, signals that grow when an answer is doubtful:

- `local_spread_mm`: the probability-weighted RMS distance of the final local
  pass's votes from its estimate (votes that disagree);
- `global_spread_mm`: the same for the global stage;
- `global_local_mm`: how far the local stage moved the global estimate;
- `local_mass`, `global_mass`: the summed cell probabilities (uncapped);
- `shift_mm`: with `shift_crops`, the RMS distance between the estimates of
  local passes on sub-images shifted by a few pixels (0 without);
- `shape_mm`: how far the landmark lies from where the other landmarks put it
  (`lmk_tf.method.shape`; 0 for a model without shape weights);
- `ensemble_mm`: the RMS distance of the estimates of local nets trained apart
  from their mean (0 for a model with one local net).

A calibration fitted on out-of-fold predictions (never on a model's own
training images) maps them to `expected_error_mm` (predicted radial error) with
log(err + EPS) = intercept[l] + sum_k w_k x_k + sum_k h_k max(x_k - knot_k, 0),
x_k = log(feature_k + EPS), and to `radius90_mm` = q90 * expected_error_mm, q90
being the split-conformal quantile of err / expected_error_mm on the
calibration set, so that the truth lies within it 9 times in 10. The hinge
terms (knots at each signal's 90th percentile; fitted only on calibration sets
of HINGE_MIN_ROWS or more) let a signal that is extreme say more than its
linear weight would: a local stage that moved the global estimate twice as far
as usual is a gross miss more often than a linear map predicts.
"""

from __future__ import annotations

import math

import numpy as np
from keras import ops

from lmk_tf.method.layers import cell_centres

FEATURES = ("local_spread_mm", "global_spread_mm", "global_local_mm", "local_mass", "global_mass", "shift_mm",
            "shape_mm", "ensemble_mm")
EPS = 0.05  # mm (and probability units): keeps log() finite and damps tiny values
HINGE_QUANTILE = 0.9
# Below this many predictions a hinge has too few rows above its knot to be fitted.
HINGE_MIN_ROWS = 200


def vote_spread(displacement, probability, position, stride, from_logits=False):
    """Probability-weighted RMS distance (stage pixels) of the votes from `position`.

    displacement [B, *grid, L * ndim] (decoded), probability [B, *grid, L]
    (logits with `from_logits`), position [B, L, ndim] -> [B, L]. Weights are
    the probabilities over their peak, as in the aggregation; from logits they
    are formed in log space, so they survive when every probability underflows.
    """
    shape = ops.shape(probability)
    ndim = len(probability.shape) - 2
    num_landmarks = probability.shape[-1]
    grid_shape = [shape[1 + a] for a in range(ndim)]
    centres = ops.reshape(cell_centres(grid_shape, stride), (1, -1, 1, ndim))
    votes = centres + ops.reshape(displacement, (shape[0], -1, num_landmarks, ndim))
    prob = ops.reshape(ops.cast(probability, "float32"), (shape[0], -1, num_landmarks))
    if from_logits:
        log_p = ops.log_sigmoid(prob)
        weights = ops.exp(log_p - ops.max(log_p, axis=1, keepdims=True))
    else:
        weights = prob / ops.maximum(ops.max(prob, axis=1, keepdims=True), 1e-30)
    sq = ops.sum(ops.square(votes - ops.expand_dims(position, 1)), axis=-1)
    return ops.sqrt(ops.sum(weights * sq, axis=1) / ops.maximum(ops.sum(weights, axis=1), 1e-12))


def default_calibration(num_landmarks: int) -> dict:
    """An uncalibrated map: the local vote spread, taken as the error, 2.5x for 90 %."""
    return {
        "features": list(FEATURES),
        "weights": [1.0 if f == "local_spread_mm" else 0.0 for f in FEATURES],
        "intercepts": [0.0] * num_landmarks,
        "smear": 1.0,
        "q90": 2.5,
        "fitted_on": "nothing (uncalibrated default)",
    }


def apply_calibration(signals: dict, calibration: dict):
    """In the graph: signals (name -> [L]) -> (expected_error_mm [L], radius90_mm [L])."""
    log_err = ops.convert_to_tensor(np.asarray(calibration["intercepts"], np.float32))
    # A calibration fitted before the hinges existed has none.
    num = len(calibration["features"])
    knots = calibration.get("knots", [0.0] * num)
    hinges = calibration.get("hinge_weights", [0.0] * num)
    for name, w, knot, h in zip(calibration["features"], calibration["weights"], knots, hinges):
        if w or h:
            x = ops.log(signals[name] + EPS)
            log_err = log_err + float(w) * x + float(h) * ops.maximum(x - float(knot), 0.0)
    expected = ops.maximum(ops.exp(log_err) * float(calibration["smear"]) - EPS, 0.01)
    return expected, expected * float(calibration["q90"])


def _design(features: np.ndarray, knots=None) -> np.ndarray:
    """The log signals, and with `knots` their hinges after them."""
    x = np.log(np.asarray(features, np.float64) + EPS)
    return x if knots is None else np.concatenate([x, np.maximum(x - np.asarray(knots), 0.0)], axis=1)


def fit_calibration(features: np.ndarray, landmark: np.ndarray, errors: np.ndarray, num_landmarks: int, *,
                    ridge: float = 1.0, coverage: float = 0.9, fitted_on: str = "",
                    feature_names=FEATURES) -> dict:
    """Least-squares fit of the log-error map, then the conformal quantile.

    features [N, len(feature_names)], landmark [N] (its index l), errors [N] mm:
    one row per predicted landmark, all out of fold (`feature_names`: the
    signals the columns hold, by default every one of FEATURES). The intercepts are per
    landmark (ridge-shrunk to their mean, so a landmark with few doubtful
    cases does not get an extreme one), the weights shared.
    """
    features, landmark, errors = np.asarray(features, np.float64), np.asarray(landmark), np.asarray(errors)
    if features.ndim != 2 or features.shape[1] != len(feature_names):
        raise ValueError(f"features must be [N, {len(feature_names)}] for {list(feature_names)}, "
                         f"got shape {features.shape}")
    if len(errors) < 20:
        raise ValueError(f"a calibration needs at least 20 predictions, got {len(errors)}")
    knots = (np.quantile(_design(features), HINGE_QUANTILE, axis=0) if len(errors) >= HINGE_MIN_ROWS
             else None)
    x = _design(features, knots)
    onehot = np.eye(num_landmarks)[landmark]
    a = np.concatenate([onehot, x], axis=1)
    y = np.log(errors + EPS)
    # Ridge on the per-landmark intercepts' deviation from a common one and on the weights.
    common = np.ones((1, num_landmarks)) / num_landmarks
    penalty = np.concatenate([np.eye(num_landmarks) - common, np.zeros((num_landmarks, x.shape[1]))], axis=1)
    penalty = np.concatenate([penalty, np.concatenate([np.zeros((x.shape[1], num_landmarks)),
                                                       1e-3 * np.eye(x.shape[1])], axis=1)])
    lhs = a.T @ a + ridge * penalty.T @ penalty
    coef = np.linalg.solve(lhs, a.T @ y)
    intercepts, weights = coef[:num_landmarks], coef[num_landmarks:num_landmarks + len(feature_names)]
    pred = a @ coef
    # exp(E[log]) underestimates E[err]; Duan's smearing factor restores the mean.
    smear = float(np.mean(np.exp(y - pred)))
    expected = np.maximum(np.exp(pred) * smear - EPS, 0.01)
    ratio = errors / expected
    n = len(ratio)
    q = float(np.quantile(ratio, min(1.0, math.ceil((n + 1) * coverage) / n), method="higher"))
    calibration = {
        "features": list(feature_names),
        "weights": [float(w) for w in weights],
        "intercepts": [float(b) for b in intercepts],
        "smear": smear,
        "q90": q,
        "fitted_on": fitted_on or f"{n} out-of-fold predictions",
    }
    if knots is not None:
        calibration["knots"] = [float(k) for k in knots]
        calibration["hinge_weights"] = [float(h) for h in coef[num_landmarks + len(feature_names):]]
    return calibration


def nested_predictions(features: np.ndarray, landmark: np.ndarray, errors: np.ndarray, fold: np.ndarray,
                       num_landmarks: int, *, feature_names=FEATURES):
    """(expected_error_mm, radius90_mm) of every row, each fold's rows (`fold` [N]) predicted by the
    calibration fitted on the other folds' rows only, so no row is scored by a map fitted on it."""
    features, landmark, errors, fold = map(np.asarray, (features, landmark, errors, fold))
    expected, radius = np.zeros(len(errors)), np.zeros(len(errors))
    for k in sorted(set(fold.tolist())):
        train, test = fold != k, fold == k
        calibration = fit_calibration(features[train], landmark[train], errors[train], num_landmarks,
                                      feature_names=feature_names)
        expected[test], radius[test] = predict_error(features[test], landmark[test], calibration)
    return expected, radius


def predict_error(features: np.ndarray, landmark: np.ndarray, calibration: dict):
    """numpy twin of `apply_calibration` for fitted rows: (expected_error_mm, radius90_mm)."""
    x = _design(features, calibration.get("knots"))
    weights = list(calibration["weights"]) + list(calibration.get("hinge_weights", []))
    log_err = np.asarray(calibration["intercepts"])[np.asarray(landmark)] + x @ np.asarray(weights)
    expected = np.maximum(np.exp(log_err) * calibration["smear"] - EPS, 0.01)
    return expected, expected * calibration["q90"]
