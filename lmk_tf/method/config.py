"""Typed settings of a global or local training stage.

The defaults per kind of image are the presets (`presets.py`).
`lmk-train` resolves flags into a StageConfig and writes it as config.json into
the stage's directory before training, so a trained model always carries the
exact settings it was made with (export reads them from there).
"""

from __future__ import annotations

import dataclasses
import json
import os

from lmk_tf.errors import ConfigError

STAGES = ("global", "local")
# How the composed graph combines its local nets' estimates (`InferenceConfig.member_weighting`).
MEMBER_WEIGHTINGS = ("mean", "inverse_variance")
LOCAL_MODES = ("shared", "specialised")


@dataclasses.dataclass
class NetConfig:
    """Shape of one FCN.

    Attributes:
      stem_filters: filters of the first convolution.
      stem_kernel: kernel size of the first convolution.
      stem_stride: stride of the first convolution (2 downsamples early).
      stage_filters: filters of each residual stage.
      stage_strides: stride of each stage's first block.
      blocks_per_stage: residual blocks in each stage.
      head_filters: filters of the 1x1 layer shared by both heads.
    """

    stem_filters: int = 16
    stem_kernel: int = 5
    stem_stride: int = 2
    stage_filters: tuple[int, ...] = (32, 64, 64)
    stage_strides: tuple[int, ...] = (2, 2, 1)
    blocks_per_stage: int = 1
    head_filters: int = 64

    @property
    def total_stride(self) -> int:
        stride = self.stem_stride
        for s in self.stage_strides:
            stride *= s
        return stride

    def validate(self):
        if len(self.stage_filters) != len(self.stage_strides):
            raise ConfigError(
                f"stage_filters {self.stage_filters} and stage_strides {self.stage_strides} "
                "must have the same length"
            )
        for s in (self.stem_stride, *self.stage_strides):
            if s not in (1, 2):
                raise ConfigError(f"strides must be 1 or 2, got {s}")



@dataclasses.dataclass
class StageConfig:
    """Settings of one stage.

    Attributes:
      stage: 'global' or 'local'.
      ndim: 2 or 3.
      spacing: mm per pixel the stage works at (global s_g or local s_l).
      patch_size: global: training patch in pixels per axis (the served graph
        runs on the whole image); local: the sub-image size.
      net: the network's shape.
      displacement_encoding: 'cells' (d / stride) or 'log' (authors' code).
      alpha: weight of the classification loss (paper: 20 ceph, 8 CT, 2 MR).
      cls_radius: cells around the landmark's cell labelled positive.
      reg_radius: cells around it covered by the regression loss (None: all).
      local_mode: 'shared' trunk or 'specialised' nets (local stage only).
      local_offset_mm: local training crops are centred up to this far from the
        true landmark (the global stage's typical error, or more).
      rotation_deg: random rotation range (+-) for augmentation.
      zoom: random isotropic zoom range (min, max).
      translate_px: extra random translation (pixels) of global patches.
      intensity_aug: random contrast/brightness/noise.
      gamma: range (min, max) of a random exposure curve, log-uniform; (1, 1) = off.
      blur_sigma_px: largest sigma (pixels) of a random Gaussian blur; 0 = off.
      fov_cut: largest fraction of a global patch's rows (axis 0) that a cut field of
        view removes at the top or bottom (half of the patches); 0 = off.
      canvas: share of global patches whose area outside the image is a dark canvas
        (a random value from black to the mean) instead of the mean, the patch then
        normalised again as a whole: a head imaged small on a dark detector, as the
        served graph normalises it; 0 = off.
      batch_size: images per step (local: each gives L sub-images).
      steps: training steps.
      learning_rate: Adam (amsgrad) learning rate, cosine-decayed to 5% over steps.
      seed: seeds the input pipeline and initialisation.
      steps_per_epoch: steps between checkpoints, logs and progress lines.
    """

    stage: str = "global"
    ndim: int = 2
    spacing: float = 2.0
    patch_size: int = 128
    net: NetConfig = dataclasses.field(default_factory=NetConfig)
    displacement_encoding: str = "cells"
    alpha: float = 20.0
    cls_radius: int = 0
    reg_radius: int | None = 2
    local_mode: str = "shared"
    local_offset_mm: float = 6.0
    rotation_deg: float = 10.0
    zoom: tuple[float, float] = (0.9, 1.1)
    translate_px: int = 8
    intensity_aug: bool = True
    gamma: tuple[float, float] = (1.0, 1.0)
    blur_sigma_px: float = 0.0
    fov_cut: float = 0.0
    canvas: float = 0.0
    batch_size: int = 8
    steps: int = 1000
    learning_rate: float = 1e-3
    seed: int = 0
    steps_per_epoch: int = 100

    def validate(self) -> StageConfig:
        if self.stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.ndim not in (2, 3):
            raise ConfigError(f"ndim must be 2 or 3, got {self.ndim!r}")
        if not self.spacing > 0:
            raise ConfigError(f"spacing must be > 0 mm, got {self.spacing!r}")
        if self.patch_size % self.net.total_stride:
            raise ConfigError(
                f"patch_size {self.patch_size} must be a multiple of the network stride "
                f"{self.net.total_stride}"
            )
        if self.displacement_encoding not in ("cells", "log"):
            raise ConfigError(
                f"displacement_encoding must be 'cells' or 'log', got {self.displacement_encoding!r}"
            )
        if self.local_mode not in LOCAL_MODES:
            raise ConfigError(f"local_mode must be one of {LOCAL_MODES}, got {self.local_mode!r}")
        for name in ("batch_size", "steps", "steps_per_epoch"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if not self.zoom[0] <= self.zoom[1] or self.zoom[0] <= 0:
            raise ConfigError(f"zoom must be (min, max) with 0 < min <= max, got {self.zoom!r}")
        if not self.gamma[0] <= self.gamma[1] or self.gamma[0] <= 0:
            raise ConfigError(f"gamma must be (min, max) with 0 < min <= max, got {self.gamma!r}")
        if self.blur_sigma_px < 0:
            raise ConfigError(f"blur_sigma_px must be >= 0, got {self.blur_sigma_px!r}")
        if not 0 <= self.fov_cut < 1:
            raise ConfigError(f"fov_cut must be in [0, 1), got {self.fov_cut!r}")
        if not 0 <= self.canvas <= 1:
            raise ConfigError(f"canvas must be a share in [0, 1], got {self.canvas!r}")
        self.net.validate()
        return self

    @property
    def grid_size(self) -> int:
        return self.patch_size // self.net.total_stride

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_dict(cls, d: dict) -> StageConfig:
        d = dict(d)
        net = NetConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.pop("net", {}).items()})
        for key in ("zoom", "gamma"):
            if key in d:
                d[key] = tuple(d[key])
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown stage settings: {sorted(unknown)}")
        return cls(net=net, **d).validate()

    def save(self, directory: str) -> str:
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, "config.json")
        with open(path, "w") as f:
            f.write(self.to_json())
        return path

    @classmethod
    def load(cls, directory: str) -> StageConfig:
        path = os.path.join(directory, "config.json")
        try:
            with open(path) as f:
                return cls.from_dict(json.load(f))
        except FileNotFoundError:
            raise ConfigError(f"{path}: no stage config (was this stage trained with lmk-train?)") from None
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
