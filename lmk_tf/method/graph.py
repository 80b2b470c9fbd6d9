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

import keras
import tensorflow as tf

from lmk_tf.method.config import StageConfig
from lmk_tf.method.layers import (
    PACKAGE,
    SubImageCrop,
    WeightedDisplacementAggregation,
    decode_displacement,
)
from lmk_tf.method.preprocess import pad_to_multiple, resampled_size
from lmk_tf.method.windows import intensity_stats, normalised_resample, normalised_windows


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

    Call arguments:
      inputs: dict with `image` [*spatial, 1] and `spacing` [ndim] (one image,
        no batch axis, as the served signature takes it).

    Returns:
      dict of `landmarks_index` [L, ndim], `landmarks_mm` [L, ndim],
      `confidence` [L], `present` [L] bool, and `global_index` [L, ndim]
      (the global stage's estimate, for diagnostics).
    """

    def __init__(self, global_net, local_net, global_config, local_config, landmark_names,
                 presence_threshold=0.5, local_iterations=1, **kwargs):
        super().__init__(**kwargs)
        self.global_net = global_net
        self.local_net = local_net
        self.global_config = dict(global_config)
        self.local_config = dict(local_config)
        self.landmark_names = list(landmark_names)
        self.presence_threshold = float(presence_threshold)
        self.local_iterations = int(local_iterations)
        g = StageConfig.from_dict(self.global_config)
        loc = StageConfig.from_dict(self.local_config)
        if g.ndim != loc.ndim:
            raise ValueError(f"global stage is {g.ndim}D but local stage is {loc.ndim}D")
        self.ndim = g.ndim
        self._g, self._l = g, loc
        self.global_aggregation = WeightedDisplacementAggregation(g.net.total_stride, name="global_aggregation")
        self.local_aggregation = WeightedDisplacementAggregation(loc.net.total_stride, name="local_aggregation")
        self.crop = SubImageCrop(loc.patch_size, self.ndim, name="local_crop")

    def call(self, inputs):
        image = tf.cast(inputs["image"], tf.float32)
        spacing = tf.cast(inputs["spacing"], tf.float32)
        g, loc = self._g, self._l
        num_landmarks = len(self.landmark_names)
        stats = intensity_stats(image)

        g_img, g_scale, g_off = normalised_resample(image, spacing, g.spacing, stats)
        out = self.global_net(pad_to_multiple(g_img, g.net.total_stride)[None], training=False)
        disp = decode_displacement(out["displacement"], g.net.total_stride, g.displacement_encoding)
        g_pos, g_conf = self.global_aggregation(disp, out["classification"])
        index = g_off + g_scale * g_pos[0]
        global_index = index

        size_in = tf.shape(image)[:-1]
        l_scale = tf.cast(size_in, tf.float32) / tf.cast(resampled_size(size_in, spacing, loc.spacing), tf.float32)
        l_off = (l_scale - 1.0) / 2.0
        stride, n = loc.net.total_stride, loc.patch_size
        confidence = g_conf[0]
        for _ in range(self.local_iterations):
            centres = (index - l_off) / l_scale
            windows, starts = normalised_windows(image, spacing, loc.spacing, stats, centres, n + 1)
            crops = self.crop(windows, (centres - starts)[:, None, :])  # [L, 1, *n, 1]
            crops = tf.reshape(crops, [1, num_landmarks] + [n] * self.ndim + [1])
            out = self.local_net(crops, training=False)
            grid = out["classification"].shape[2:]
            disp = decode_displacement(out["displacement"], stride, loc.displacement_encoding)
            disp = tf.reshape(disp, [num_landmarks, *grid, self.ndim])
            prob = tf.reshape(out["classification"], [num_landmarks, *grid, 1])
            pos, l_conf = self.local_aggregation(disp, prob)
            local_index = centres + pos[:, 0] - (n - 1) / 2.0
            index = l_off + l_scale * local_index
            confidence = l_conf[:, 0]

        size = tf.cast(tf.shape(image)[:-1], tf.float32)
        inside = tf.reduce_all((index >= -0.5) & (index <= size - 0.5), axis=-1)
        present = (g_conf[0] >= self.presence_threshold) & inside
        return {
            "landmarks_index": index,
            "landmarks_mm": index * spacing,
            "confidence": confidence,
            "present": present,
            "global_index": global_index,
        }

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
        })
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["global_net"] = keras.saving.deserialize_keras_object(config["global_net"])
        config["local_net"] = keras.saving.deserialize_keras_object(config["local_net"])
        return cls(**config)
