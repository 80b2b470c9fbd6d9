"""The whole global-to-local graph as one Keras model: image + spacing in, landmarks out.

Everything the served SavedModel does happens here, in TensorFlow ops:
normalisation, resampling to the global spacing, global net, aggregation,
resampling to the local spacing, sub-image crops around the global estimates,
local nets, aggregation, and mapping back to input indices and mm.

The local-spacing image is never made whole: each sub-image is cut from a
window of it computed on its own (`windows.normalised_windows`), and the
normalised input is made one slice at a time, so a CT-sized volume costs its
input and little more (docs/volumes.md).
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from lmk_tf.method.config import MEMBER_WEIGHTINGS, StageConfig
from lmk_tf.method.layers import (
    PACKAGE,
    SubImageCrop,
    WeightedDisplacementAggregation,
    decode_displacement,
)
from lmk_tf.method.networks import with_logits
from lmk_tf.method.preprocess import pad_to_multiple, resampled_geometry
from lmk_tf.method.scale import head_scale, pair_indices
from lmk_tf.method.shape import shape_residual
from lmk_tf.method.uncertainty import apply_calibration, default_calibration, vote_spread
from lmk_tf.method.windows import intensity_stats, normalised_resample, normalised_windows

# Directions of the shifted sub-images of `shift_crops`, per ndim: opposite pairs first.
SHIFT_SIGNS = {
    2: [[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]],
    3: [[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0], [1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]],
}
# Half-cell shifts of the copies of `global_shifts`, per ndim, in units of half a global cell.
GLOBAL_SHIFT_SIGNS = {
    2: [[1, 1], [1, 0], [0, 1]],
    3: [[1, 1, 1], [1, 0, 0], [0, 1, 1]],
}


@keras.saving.register_keras_serializable(package=PACKAGE)
class GlobalToLocal(keras.Model):
    """Global and local stages composed for inference on one image.

    Args:
      global_net: trained global FCN ({'displacement', 'classification'}).
      local_net: trained local model (crops [B, L, *n, 1] -> per-crop heads).
      global_config: dict of the global StageConfig.
      local_config: dict of the local StageConfig.
      landmark_names: the L names, in output order.
      presence_threshold: a landmark is `present` when the global stage's
        confidence (summed cell probabilities) reaches this and the estimate
        lies in the image.
      local_iterations: how often the local stage refines (paper: once).
      calibration: the map from the uncertainty signals to `expected_error_mm`
        and `radius90_mm` (`uncertainty.fit_calibration`); None: uncalibrated.
      shift_crops: passes of the first local net on sub-images shifted by 1/8
        of their size (0, 2 or 4), whose disagreement with its own estimate is
        the `shift_mm` signal; they do not change the estimate.
      global_shifts: more passes of the global net (0 to 3), each on the image
        moved by half a global cell along some axes; the global estimate is the
        mean of every pass's, which averages out where the cell grid happens to
        fall. The signals of the global stage stay those of the unmoved image.
      normalise_scale: run the local stage at the head's scale times its
        spacing, the scale measured on the global estimate against
        `reference_distances_mm` (`lmk_tf.method.scale`).
      reference_distances_mm: mean distance of every landmark pair in the
        training images (`scale.reference_distances`); needed by normalise_scale.
      shape_weights: [L, L] combination of the other landmarks that predicts
        each one (`shape.shape_weights`, fitted on the training images' truth),
        for the `shape_mm` signal; None: the signal is 0.
      extra_local_nets: more local models trained apart (other seeds) on the
        same sub-images; with them the local estimate is the mean of every
        member's, and how far the members land apart is the `ensemble_mm`
        signal (0 with one local net).
      extra_local_configs: the StageConfig dicts of `extra_local_nets`; each
        must cut sub-images of `local_config`'s size, at its own spacing (a
        coarser one sees more around the landmark in as many pixels).
      member_weighting: "mean" (every local net's estimate weighs the same) or
        "inverse_variance" (each weighs one over the square of its own vote
        spread for that landmark: a net whose votes scatter counts less there).

    Call arguments:
      inputs: dict with `image` [*spatial, 1] and `spacing` [ndim] (one image,
        no batch axis, as the served signature takes it).

    Returns:
      dict of `landmarks_index` [L, ndim], `landmarks_mm` [L, ndim],
      `confidence` [L], `present` [L] bool, `expected_error_mm` [L],
      `radius90_mm` [L], and for diagnostics `global_index` [L, ndim] (the
      global stage's estimate) and each signal of `uncertainty.FEATURES` [L].
    """

    def __init__(self, global_net, local_net, global_config, local_config, landmark_names,
                 presence_threshold=0.5, local_iterations=1, calibration=None, shift_crops=0,
                 normalise_scale=False, reference_distances_mm=None, shape_weights=None, extra_local_nets=(),
                 extra_local_configs=(), global_shifts=0, member_weighting="mean", **kwargs):
        super().__init__(**kwargs)
        self.global_net = global_net
        self.local_net = local_net
        self.global_config = dict(global_config)
        self.local_config = dict(local_config)
        self.landmark_names = list(landmark_names)
        self.presence_threshold = float(presence_threshold)
        self.local_iterations = int(local_iterations)
        self.calibration = dict(calibration) if calibration else default_calibration(len(self.landmark_names))
        if int(shift_crops) not in (0, 2, 4):
            raise ValueError(f"shift_crops must be 0, 2 or 4, got {shift_crops!r}")
        self.shift_crops = int(shift_crops)
        if int(global_shifts) not in (0, 1, 2, 3):
            raise ValueError(f"global_shifts must be 0, 1, 2 or 3, got {global_shifts!r}")
        self.global_shifts = int(global_shifts)
        if member_weighting not in MEMBER_WEIGHTINGS:
            raise ValueError(f"member_weighting must be one of {MEMBER_WEIGHTINGS}, got {member_weighting!r}")
        self.member_weighting = str(member_weighting)
        self.normalise_scale = bool(normalise_scale)
        self.reference_distances_mm = None if reference_distances_mm is None else [
            float(v) for v in reference_distances_mm]
        num_pairs = len(pair_indices(len(self.landmark_names))[0])
        num_landmarks = len(self.landmark_names)
        self.shape_weights = None if shape_weights is None else [[float(v) for v in row] for row in shape_weights]
        if self.shape_weights is not None and (len(self.shape_weights) != num_landmarks
                                               or any(len(row) != num_landmarks for row in self.shape_weights)):
            raise ValueError(f"shape_weights must be [{num_landmarks}, {num_landmarks}] for the "
                             f"{num_landmarks} landmarks")
        if self.normalise_scale and (self.reference_distances_mm is None
                                     or len(self.reference_distances_mm) != num_pairs):
            raise ValueError(f"normalise_scale needs reference_distances_mm for the {num_pairs} landmark pairs")
        g = StageConfig.from_dict(self.global_config)
        loc = StageConfig.from_dict(self.local_config)
        if g.ndim != loc.ndim:
            raise ValueError(f"global stage is {g.ndim}D but local stage is {loc.ndim}D")
        self.ndim = g.ndim
        self._g, self._l = g, loc
        if len(extra_local_nets) != len(extra_local_configs):
            raise ValueError(f"{len(extra_local_nets)} extra local nets but {len(extra_local_configs)} configs")
        self.extra_local_configs = [dict(c) for c in extra_local_configs]
        for k, c in enumerate(self.extra_local_configs):
            member = StageConfig.from_dict(c)
            differs = [f"{f} {getattr(member, f)!r} vs {getattr(loc, f)!r}"
                       for f in ("ndim", "patch_size") if getattr(member, f) != getattr(loc, f)]
            if differs:
                raise ValueError(f"local ensemble member {k + 2} cuts other sub-images than the first "
                                 f"({', '.join(differs)})")
        # Tracked after the first local net, so a one-net model keeps its variables' order.
        self.extra_local_nets = list(extra_local_nets)
        # Votes are weighted from the logits: the probabilities of a landmark far
        # outside the image underflow float32 and would all weigh nothing.
        self._global_logits = with_logits(global_net)
        self._local_logits = with_logits(local_net)
        self.global_aggregation = WeightedDisplacementAggregation(
            g.net.total_stride, from_logits=True, name="global_aggregation")
        self.local_aggregation = WeightedDisplacementAggregation(
            loc.net.total_stride, from_logits=True, name="local_aggregation")
        self._extra_local_logits = [with_logits(net) for net in self.extra_local_nets]
        self._extra_local_aggregations = [
            WeightedDisplacementAggregation(StageConfig.from_dict(c).net.total_stride, from_logits=True,
                                            name=f"local_aggregation_{k + 2}")
            for k, c in enumerate(self.extra_local_configs)]
        self.crop = SubImageCrop(loc.patch_size, self.ndim, name="local_crop")

    def build(self, input_shape):
        # The stage networks arrive built and the other layers hold no weights;
        # without this Keras would trace `call` symbolically once just to build.
        self.built = True

    def call(self, inputs):
        image = tf.cast(inputs["image"], tf.float32)
        spacing = tf.cast(inputs["spacing"], tf.float32)
        g, loc = self._g, self._l
        num_landmarks = len(self.landmark_names)
        stats = intensity_stats(image)

        g_img, g_scale, g_off = normalised_resample(image, spacing, g.spacing, stats)
        index, g_conf, g_pos, disp, g_logits = self._global_pass(g_img, g_off, g_scale, [0] * self.ndim)
        if self.global_shifts:
            shifted = [self._global_pass(g_img, g_off, g_scale, signs)[0]
                     for signs in GLOBAL_SHIFT_SIGNS[self.ndim][: self.global_shifts]]
            index = tf.add_n([index] + shifted) / (1.0 + self.global_shifts)
        global_index = index

        g_spread = vote_spread(disp, g_logits, g_pos, g.net.total_stride, from_logits=True)[0] * g.spacing
        g_mass = tf.reduce_sum(tf.sigmoid(tf.reshape(g_logits, [-1, num_landmarks])), axis=0)

        l_spacing = self._local_spacing(global_index, spacing)
        _, l_scale, l_off = resampled_geometry(tf.shape(image)[:-1], spacing, l_spacing)
        confidence = g_conf
        # The shifted sub-images (see `shift_crops`) go with the last pass, cut from its windows.
        shifts = np.reshape(SHIFT_SIGNS[self.ndim][: self.shift_crops], [-1, self.ndim]) * (loc.patch_size / 8.0)
        for k in range(self.local_iterations):
            centres = (index - l_off) / l_scale
            last = k == self.local_iterations - 1
            local_index, l_conf, l_spread, l_mass, members, moved = self._local_pass(
                image, spacing, stats, centres, (l_spacing, l_scale, l_off), shifts if last else shifts[:0])
            index = l_off + l_scale * local_index
            confidence = l_conf
        # Members trained apart disagree where the anatomy is ambiguous to any of them: how far
        # they land from their centroid, whichever way the estimate weighs them.
        ensemble = tf.sqrt(tf.reduce_mean(tf.reduce_sum(
            tf.square((members - tf.reduce_mean(members, axis=0)[None]) * l_scale * spacing), axis=-1), axis=0))

        shift = tf.zeros_like(confidence)
        if self.shift_crops:
            # Where the first net's estimates from sub-images moved a few pixels disagree with
            # its own, it is unsure whatever its probabilities say. The ensemble's other nets
            # would multiply the cost, and ensemble_mm already measures how they disagree.
            first = l_off + l_scale * members[0]
            sq = tf.reduce_sum(tf.square((l_off + l_scale * moved - first[None]) * spacing), axis=-1)
            shift = tf.sqrt(tf.reduce_mean(sq, axis=0))

        signals = {
            "local_spread_mm": l_spread * l_spacing,
            "global_spread_mm": g_spread,
            "global_local_mm": tf.norm((index - global_index) * spacing, axis=-1),
            "local_mass": l_mass,
            "global_mass": g_mass,
            "shift_mm": shift,
            "shape_mm": (tf.zeros_like(confidence) if self.shape_weights is None
                         else shape_residual(index * spacing, self.shape_weights)),
            "ensemble_mm": ensemble,
        }
        expected_error, radius90 = apply_calibration(signals, self.calibration)
        size = tf.cast(tf.shape(image)[:-1], tf.float32)
        inside = tf.reduce_all((index >= -0.5) & (index <= size - 0.5), axis=-1)
        present = (g_conf >= self.presence_threshold) & inside
        return {
            "landmarks_index": index,
            "landmarks_mm": index * spacing,
            "confidence": confidence,
            "present": present,
            "expected_error_mm": expected_error,
            "radius90_mm": radius90,
            "global_index": global_index,
            **signals,
        }

    def _global_pass(self, g_img, g_off, g_scale, signs):
        """One pass of the global net on `g_img` moved by half a cell times `signs` along each axis
        (padded before, so its cells fall between the unmoved ones'). Returns the estimate (input
        indices [L, ndim]), the confidence [L], and what the signals need: the position on the
        unmoved grid [1, L, ndim], the decoded displacements and the classification logits."""
        g = self._g
        shift = [int(s) * (g.net.total_stride // 2) for s in signs]
        moved = tf.pad(g_img, [[s, 0] for s in shift] + [[0, 0]]) if any(shift) else g_img
        out = self._global_logits(pad_to_multiple(moved, g.net.total_stride)[None], training=False)
        disp = decode_displacement(out["displacement"], g.net.total_stride, g.displacement_encoding)
        pos, conf = self.global_aggregation(disp, out["classification"])
        pos = pos - tf.constant(shift, tf.float32)
        return g_off + g_scale * pos[0], conf[0], pos, disp, out["classification"]

    def refine_from(self, image, spacing, start_index):
        """The local stage alone, started from `start_index` [L, ndim] (input indices) instead of
        the global estimate: one pass, every local net, no shifted sub-images. Returns the refined
        input indices [L, ndim]. For diagnostics: how much of the error is the local stage's own
        (started from the truth) and how much the global stage's start adds."""
        image = tf.cast(image, tf.float32)
        spacing = tf.cast(spacing, tf.float32)
        start_index = tf.cast(start_index, tf.float32)
        l_spacing = self._local_spacing(start_index, spacing)
        _, l_scale, l_off = resampled_geometry(tf.shape(image)[:-1], spacing, l_spacing)
        local_index = self._local_pass(image, spacing, intensity_stats(image), (start_index - l_off) / l_scale,
                                       (l_spacing, l_scale, l_off), np.zeros([0, self.ndim]))[0]
        return l_off + l_scale * local_index

    def _local_spacing(self, index, spacing):
        # The local stage at the head's own scale (measured on `index`): it sees the anatomy
        # at the size it trained on.
        l_spacing = tf.constant(self._l.spacing, tf.float32)
        if self.normalise_scale:
            l_spacing = l_spacing * head_scale(index, spacing, self.reference_distances_mm)
        return l_spacing

    def _local_pass(self, image, spacing, stats, centres, geometry, offsets):
        """One local refinement around `centres` (indices [L, ndim] of the first local net's grid,
        `geometry` = (its spacing in mm, and the scale and offset that map it to input indices)).

        Each sub-image is cut from a small window of the input, normalised and
        resampled on its own, so no full-resolution copy of a large volume is made.
        The local nets trained at one spacing see the same sub-images; a net trained
        at another spacing gets its own, centred on the same points. With `offsets`
        [S, ndim] (numpy, local-grid pixels; S may be 0), the first net also answers the S
        sub-images centred at centres + offsets[s]: they are cut from one
        window per landmark, widened to hold them, and run in one batch with
        the unshifted ones, which costs much less than S more passes.

        Returns the refined local-grid indices (the members' mean, or their inverse-variance
        weighted mean: see `member_weighting`), the
        confidence, the vote spread (local pixels) and the summed probability
        (each the members' mean, per landmark), every member's indices
        [members, L, ndim], and the first net's indices from the shifted
        sub-images [S, L, ndim].
        """
        num_landmarks, ndim = len(self.landmark_names), self.ndim
        configs = [self._l] + [StageConfig.from_dict(c) for c in self.extra_local_configs]
        nets = zip([self._local_logits] + self._extra_local_logits,
                   [self.local_aggregation] + self._extra_local_aggregations, configs)
        views = {}
        results = []
        for k, (logits_net, aggregation, config) in enumerate(nets):
            ratio = config.spacing / self._l.spacing
            if ratio not in views:
                views[ratio] = self._sub_images(image, spacing, stats, centres, geometry,
                                                None if ratio == 1.0 else ratio, offsets if k == 0 else offsets[:0])
            crops, to_first = views[ratio]
            batch = 1 + len(offsets) if k == 0 else 1
            stride = config.net.total_stride
            out = logits_net(crops[:batch], training=False)
            grid = out["classification"].shape[2:]
            disp = decode_displacement(out["displacement"], stride, config.displacement_encoding)
            disp = tf.reshape(disp, [batch * num_landmarks, *grid, ndim])
            logits = tf.reshape(out["classification"], [batch * num_landmarks, *grid, 1])
            pos, l_conf = aggregation(disp, logits)
            estimates = to_first(tf.reshape(pos[:, 0], [batch, num_landmarks, ndim]))
            if k == 0:
                moved = estimates[1:]
            # Spread and mass from the unshifted sub-images only; the spread in the first net's pixels.
            disp, logits = disp[:num_landmarks], logits[:num_landmarks]
            spread = vote_spread(disp, logits, pos[:num_landmarks], stride, from_logits=True)[:, 0] * ratio
            mass = tf.reduce_sum(tf.sigmoid(tf.reshape(logits, [num_landmarks, -1])), axis=-1)
            results.append((estimates[0], l_conf[:num_landmarks, 0], spread, mass))
        members = tf.stack([r[0] for r in results])
        mean = [tf.reduce_mean(tf.stack([r[k] for r in results]), axis=0) for k in range(1, 4)]
        if self.member_weighting == "inverse_variance":
            # The floor keeps a net whose votes all agree (spread ~0) from dividing by zero.
            weights = 1.0 / tf.square(tf.maximum(tf.stack([r[2] for r in results]), 1e-3))  # [members, L]
            estimate = tf.reduce_sum(members * weights[..., None], axis=0) / tf.reduce_sum(weights, axis=0)[:, None]
        else:
            estimate = tf.reduce_mean(members, axis=0)
        return (estimate, *mean, members, moved)

    def _sub_images(self, image, spacing, stats, centres, geometry, ratio, offsets):
        """The sub-images [1 + S, L, *n, 1] at `ratio` times the first local net's spacing (None: at
        it) around `centres` (indices of the first net's grid, whose `geometry` `_local_pass` takes) and
        around centres + offsets[s] (pixels of this view), and the function that takes a net's
        positions in them [B, L, ndim] to indices of the first net's grid."""
        n, ndim = self._l.patch_size, self.ndim
        l_spacing, l_scale, l_off = geometry
        if ratio is None:  # the first net's own grid
            v_scale, v_off, view_spacing, view_centres = l_scale, l_off, l_spacing, centres
        else:
            view_spacing = l_spacing * ratio
            _, v_scale, v_off = resampled_geometry(tf.shape(image)[:-1], spacing, view_spacing)
            view_centres = (l_off + l_scale * centres - v_off) / v_scale
        margin = int(math.ceil(float(np.abs(offsets).max(initial=0.0))))
        windows, starts = normalised_windows(image, spacing, view_spacing, stats, view_centres, n + 1 + 2 * margin)
        # A window of size n + 1 + 2m starting where `normalised_windows` puts it holds every
        # sub-image of n pixels centred within m of its centre.
        placed = tf.constant(np.concatenate([np.zeros([1, ndim]), offsets]), tf.float32)
        crops = self.crop(windows, (view_centres - starts)[:, None, :] + placed[None])  # [L, 1 + S, *n, 1]
        crops = tf.transpose(crops, [1, 0] + list(range(2, ndim + 3)))  # [1 + S, L, *n, 1]

        def to_first(pos):
            view_index = view_centres[None] + placed[: pos.shape[0], None, :] + pos - (n - 1) / 2.0
            return view_index if v_scale is l_scale else (v_off + v_scale * view_index - l_off) / l_scale

        return crops, to_first

    def get_config(self):
        config = super().get_config()
        config.update({
            "global_net": keras.saving.serialize_keras_object(self.global_net),
            "local_net": keras.saving.serialize_keras_object(self.local_net),
            "global_config": self.global_config,
            "local_config": self.local_config,
            "landmark_names": self.landmark_names,
            "presence_threshold": self.presence_threshold,
            "local_iterations": self.local_iterations,
            "calibration": self.calibration,
            "shift_crops": self.shift_crops,
            "global_shifts": self.global_shifts,
            "member_weighting": self.member_weighting,
            "normalise_scale": self.normalise_scale,
            "reference_distances_mm": self.reference_distances_mm,
            "shape_weights": self.shape_weights,
            "extra_local_nets": [keras.saving.serialize_keras_object(n) for n in self.extra_local_nets],
            "extra_local_configs": self.extra_local_configs,
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["global_net"] = keras.saving.deserialize_keras_object(config["global_net"])
        config["local_net"] = keras.saving.deserialize_keras_object(config["local_net"])
        config["extra_local_nets"] = [keras.saving.deserialize_keras_object(n)
                                      for n in config.get("extra_local_nets", [])]
        return cls(**config)
