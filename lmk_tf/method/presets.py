"""Presets: every setting a figure depends on, as one typed value.

A `Preset` holds both stages' `StageConfig`s and the `InferenceConfig` of the
composed graph. Training writes the inference settings to
`<model_dir>/inference.json` beside dataset.json, and export reads them from
there, so `lmk-export` serves what the benchmark or recipe measured. Nothing
heavy is imported here: the commands read presets before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
import json
import os

from lmk_tf.errors import ConfigError
from lmk_tf.method.config import MEMBER_WEIGHTINGS, STAGES, NetConfig, StageConfig

PRESETS = ("synthetic", "ceph", "ct", "mr_head", "synthetic3d")
# Presets for volumes only; the others exist in 2D and 3D or, ceph, in 2D only.
VOLUME_PRESETS = ("ct", "mr_head", "synthetic3d")
INFERENCE_FILE = "inference.json"


@dataclasses.dataclass(frozen=True)
class InferenceConfig:
    """Settings of the composed graph that training does not learn.

    Attributes:
      presence_threshold: a landmark is reported `present` when the global
        stage's confidence reaches this (0: always, if inside the image).
      local_iterations: how often the local stage refines, each pass
        re-centring its sub-image on the last estimate (paper: once).
      shift_crops: extra local passes on shifted sub-images (0, 2 or 4) whose
        disagreement is an uncertainty signal; they do not move the estimate.
      global_shifts: more passes of the global net (0 to 3) on the image moved by
        half a global cell; the global estimate is the mean of every pass's.
      normalise_scale: run the local stage at the head's scale (measured on the
        global estimate against the training images' landmark distances) times
        its spacing (`lmk_tf.method.scale`); for images that show every landmark.
      member_weighting: how the local nets' estimates are combined: "mean", or
        "inverse_variance" (each net's weighted by one over the square of its
        own vote spread for that landmark).
    """

    presence_threshold: float = 0.5
    local_iterations: int = 1
    shift_crops: int = 0
    normalise_scale: bool = False
    global_shifts: int = 0
    member_weighting: str = "mean"

    def validate(self) -> InferenceConfig:
        if not self.presence_threshold >= 0.0:
            raise ConfigError(f"presence_threshold must be >= 0, got {self.presence_threshold!r}")
        if not isinstance(self.local_iterations, int) or self.local_iterations < 1:
            raise ConfigError(f"local_iterations must be an integer >= 1, got {self.local_iterations!r}")
        if self.shift_crops not in (0, 2, 4):
            raise ConfigError(f"shift_crops must be 0, 2 or 4, got {self.shift_crops!r}")
        if self.global_shifts not in (0, 1, 2, 3):
            raise ConfigError(f"global_shifts must be 0, 1, 2 or 3, got {self.global_shifts!r}")
        if self.member_weighting not in MEMBER_WEIGHTINGS:
            raise ConfigError(f"member_weighting must be one of {', '.join(MEMBER_WEIGHTINGS)}, "
                              f"got {self.member_weighting!r}")
        if not isinstance(self.normalise_scale, bool):
            raise ConfigError(f"normalise_scale must be true or false, got {self.normalise_scale!r}")
        return self

    def override(self, **changes) -> InferenceConfig:
        """These settings with `changes` applied; a None value keeps the setting."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None}).validate()

    def save(self, model_dir: str) -> str:
        os.makedirs(model_dir, exist_ok=True)
        path = os.path.join(model_dir, INFERENCE_FILE)
        with open(path, "w") as f:
            json.dump(dataclasses.asdict(self), f, indent=2)
        return path

    @classmethod
    def load(cls, model_dir: str) -> InferenceConfig:
        """The settings training wrote; the defaults for a directory trained without them."""
        path = os.path.join(model_dir, INFERENCE_FILE)
        if not os.path.exists(path):
            return cls()
        try:
            with open(path) as f:
                d = json.load(f)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"{path}: unknown inference settings {sorted(unknown)}")
        try:
            return cls(**d).validate()
        except ConfigError as e:
            raise ConfigError(f"{path}: {e}") from None


@dataclasses.dataclass
class Preset:
    """Both stages and the inference settings of one kind of image.

    Attributes:
      name: what `--preset` calls it.
      global_config: settings of the global stage.
      local_config: settings of the local stage.
      inference: settings of the composed graph, exported with the model.
      local_members: more local stages, trained apart (another seed, other
        augmentation, or another spacing: sub-images of the first's size
        that see more or less around the landmark); the served local
        estimate is the mean of every local net's, and their disagreement the
        `ensemble_mm` signal. Each trains to <model_dir>/local-2, local-3, ...
    """

    name: str
    global_config: StageConfig
    local_config: StageConfig
    inference: InferenceConfig = InferenceConfig()
    local_members: tuple[StageConfig, ...] = ()

    @property
    def ndim(self) -> int:
        return self.global_config.ndim

    @property
    def stages(self) -> tuple[StageConfig, StageConfig]:
        return self.global_config, self.local_config

    @property
    def member_stages(self) -> list[tuple[str, StageConfig]]:
        """(directory name, config) of every local stage after the first."""
        return [(member_dir(k), c) for k, c in enumerate(self.local_members, start=2)]

    def stage(self, stage: str) -> StageConfig:
        if stage not in STAGES:
            raise ConfigError(f"stage must be one of {STAGES}, got {stage!r}")
        return self.global_config if stage == "global" else self.local_config

    def validate(self) -> Preset:
        for want, config in zip(STAGES, self.stages):
            if config.stage != want:
                raise ConfigError(f"preset {self.name!r}: its {want} stage says stage={config.stage!r}")
            config.validate()
        if self.local_config.ndim != self.ndim:
            raise ConfigError(f"preset {self.name!r}: global stage is {self.ndim}D, "
                              f"local stage {self.local_config.ndim}D")
        for name, member in self.member_stages:
            member.validate()
            differs = [f for f in ("stage", "ndim", "patch_size")
                       if getattr(member, f) != getattr(self.local_config, f)]
            if differs:
                raise ConfigError(f"preset {self.name!r}: local member {name} must cut sub-images of the local "
                                  f"stage's size; its {', '.join(differs)} differ")
        self.inference.validate()
        return self

    def with_steps(self, global_steps: int | None = None, local_steps: int | None = None) -> Preset:
        """Other step counts (None keeps the preset's); an epoch never exceeds the steps.
        `local_steps` holds for every local net of an ensemble."""
        def steps(config, n):
            if n is None:
                return config
            return dataclasses.replace(config, steps=n, steps_per_epoch=min(config.steps_per_epoch, n))

        return dataclasses.replace(self, global_config=steps(self.global_config, global_steps),
                                   local_config=steps(self.local_config, local_steps),
                                   local_members=tuple(steps(c, local_steps) for c in self.local_members))

    def with_stages(self, **changes) -> Preset:
        """The same change (e.g. seed=3) in both stages."""
        return dataclasses.replace(self, global_config=dataclasses.replace(self.global_config, **changes),
                                   local_config=dataclasses.replace(self.local_config, **changes))

    def with_inference(self, **changes) -> Preset:
        """Other inference settings; None values keep the preset's."""
        return dataclasses.replace(self, inference=self.inference.override(**changes))


def member_dir(k: int) -> str:
    """The directory of the k-th local net (k >= 2) under a model directory."""
    return f"local-{k}"


def _synthetic(ndim: int) -> Preset:
    # The steps are those of the published figures (docs/benchmarks.md).
    if ndim == 2:
        local_net = NetConfig(stem_filters=16, stem_kernel=3, stem_stride=1,
                              stage_filters=(16, 32, 64), stage_strides=(2, 2, 1), head_filters=64)
        return Preset(
            "synthetic",
            StageConfig(stage="global", ndim=2, spacing=2.0, patch_size=128, net=NetConfig(),
                        steps=1500, batch_size=8),
            StageConfig(stage="local", ndim=2, spacing=1.0, patch_size=32, net=local_net,
                        local_offset_mm=6.0, reg_radius=None, steps=2000, batch_size=8, translate_px=0),
        )
    local3 = NetConfig(stem_filters=8, stem_kernel=3, stem_stride=1, stage_filters=(16, 32, 32),
                       stage_strides=(2, 2, 1), head_filters=32)
    return Preset(
        "synthetic",
        StageConfig(stage="global", ndim=3, spacing=3.0, patch_size=32,
                    net=NetConfig(stem_filters=16, stem_kernel=3, stage_filters=(32, 64),
                                  stage_strides=(2, 1), head_filters=64),
                    steps=1000, batch_size=4, rotation_deg=8.0, translate_px=4, alpha=8.0,
                    reg_radius=None, steps_per_epoch=50),
        StageConfig(stage="local", ndim=3, spacing=1.5, patch_size=16, net=local3,
                    local_offset_mm=6.0, reg_radius=None, steps=800, batch_size=2,
                    translate_px=0, alpha=8.0, rotation_deg=8.0, steps_per_epoch=50),
        # Six local passes recover what the coarse 3 mm global stage misses; chosen
        # on a validation set (seed 99), not the held-out one: 3 -> 1.85 mm,
        # 4 -> 1.76 mm, 6 -> 1.70 mm.
        InferenceConfig(local_iterations=6),
    )


def _ceph() -> Preset:
    # A fourth stage at the cells' resolution widens what each cell sees (about 11 -> 16 mm at
    # 0.3 mm) for 1.45x the cost a step: every fold 5-8 % better (docs/isbi2015.md), and from a start 4 mm
    # off the truth the local stage alone 1.105 -> 1.031 mm (fold 0; docs/isbi2015.md).
    local_net = NetConfig(stem_filters=16, stem_kernel=3, stem_stride=1,
                          stage_filters=(16, 32, 64, 64), stage_strides=(2, 2, 1, 1), head_filters=64)
    # reg_radius=3: only the 7x7 cells around the landmark, which carry ~90% of the
    # aggregation weight, learn to regress. Regressing every cell of the 16x16 grid spent
    # the small net on cells that cannot see the landmark; its votes then only
    # corrected ~60% of the global error (held-out fold 0: 1.70 -> 1.16 mm).
    local = StageConfig(stage="local", ndim=2, spacing=0.3, patch_size=64, net=local_net,
                        local_offset_mm=6.0, reg_radius=3, steps=8000, batch_size=2,
                        translate_px=0, rotation_deg=15.0, zoom=(0.8, 1.25), gamma=(0.55, 1.8),
                        blur_sigma_px=1.5)
    return Preset(
        "ceph",
        # Augmented for the range real cephalograms differ by: magnification and patient
        # size (zoom), head tilt, position (translation that pushes parts of the head out of
        # the field), cut fields of view, exposure (gamma), sharpness (blur). Half the patches
        # show the area outside the image as a dark canvas, as a small head in a large field
        # leaves it: without it the global stage put 0.75x heads up to 60 mm off (docs/isbi2015.md).
        StageConfig(stage="global", ndim=2, spacing=1.0, patch_size=224,
                    net=NetConfig(stage_filters=(32, 64, 96, 96), stage_strides=(2, 2, 2, 1)),
                    steps=8000, batch_size=4, rotation_deg=15.0, zoom=(0.7, 1.45), translate_px=48,
                    gamma=(0.55, 1.8), blur_sigma_px=1.0, fov_cut=0.25, canvas=0.5),
        local,
        # Every cephalogram shows all its landmarks, so each is reported (with its
        # confidence) and counts in the MRE and SDR; and all 19 measure the head's scale.
        # Scale-normalised local stage, held-out folds 0-3 (docs/isbi2015.md): 0.75x heads
        # 1.45-1.52 -> 1.23-1.27 mm, own-size heads 1.186 -> 1.186 mm pooled.
        # No shifted sub-images: with two local nets of different shape, whose disagreement is a
        # signal, shift_mm adds little to the predicted error (nested over five folds, Spearman
        # 0.517 -> 0.519, AUROC > 4 mm 0.843 -> 0.850) and its four extra passes of the first
        # local net were half of the latency (98-112 -> 47-60 ms a cephalogram; docs/isbi2015.md).
        # The global estimate is the mean of four passes, on the image and on three copies moved by
        # half a 16 mm cell: every fold better (on version 6's nets, five folds 1.134 -> 1.124 mm).
        InferenceConfig(presence_threshold=0.0, normalise_scale=True, global_shifts=3),
        # Two more local nets of the first's shape and schedule; the local estimate is the three
        # nets' mean and their disagreement the ensemble_mm signal. The first member differs only
        # in its seed (version 8's); the second's augmentation is narrower (zoom 0.9-1.12,
        # rotation 8 deg): the local stage runs at the head's measured scale, so the wide range
        # the first net covers is not what it meets, and nets that differ disagree more usefully.
        # Five folds 1.068 -> 1.046 mm, every fold better (docs/isbi2015.md, version 9).
        local_members=(dataclasses.replace(local, seed=2),
                       dataclasses.replace(local, seed=3, zoom=(0.9, 1.12), rotation_deg=8.0)),
    )


# Volumes: the input's own spacing may be anything (0.7 x 0.7 x 2.5 mm CT, 1 mm
# MR); both stages resample to their isotropic spacing, in lmk-prepare and in
# the served graph alike, so one model takes anisotropic and isotropic scans.
_LOCAL3 = NetConfig(stem_filters=8, stem_kernel=3, stem_stride=1, stage_filters=(16, 32, 32),
                    stage_strides=(2, 2, 1), head_filters=32)


def _volume(name: str, *, global_spacing: float, local_spacing: float, alpha: float) -> Preset:
    """CT and MR: whole scans of 200-400 mm, landmarks anywhere, some outside the scan."""
    return Preset(
        name,
        # Stride 8 (the authors' CT setting): 16 mm cells at 2 mm; 128 mm training patches.
        StageConfig(stage="global", ndim=3, spacing=global_spacing, patch_size=64,
                    net=NetConfig(stem_filters=16, stem_kernel=3, stem_stride=2, stage_filters=(32, 64, 64),
                                  stage_strides=(2, 2, 1), head_filters=64),
                    steps=4000, batch_size=2, rotation_deg=10.0, translate_px=8, alpha=alpha,
                    reg_radius=2, steps_per_epoch=100),
        # 24 voxels: an 18-24 mm sub-image, enough for the global stage's few-mm error.
        StageConfig(stage="local", ndim=3, spacing=local_spacing, patch_size=24, net=_LOCAL3,
                    local_offset_mm=8.0, reg_radius=None, steps=4000, batch_size=2, translate_px=0,
                    alpha=alpha, rotation_deg=10.0, steps_per_epoch=100),
        # A scan need not show every landmark: absent ones are reported so.
        InferenceConfig(presence_threshold=0.5, local_iterations=3),
    )


def _synthetic3d() -> Preset:
    """The volume benchmark (benchmarks/volumes.py): 96 mm synthetic volumes at 0.8 x 0.8 x 2 mm."""
    synthetic = _synthetic(3)
    return Preset(
        "synthetic3d",
        dataclasses.replace(synthetic.global_config, steps=1500),
        # The 1.5 mm local stage of the 'synthetic' preset left 1.97 mm on 1.5 mm
        # volumes (docs/benchmarks.md). The same 24 mm sub-image at 1 mm: 24 voxels.
        StageConfig(stage="local", ndim=3, spacing=1.0, patch_size=24, net=_LOCAL3,
                    local_offset_mm=6.0, reg_radius=None, steps=2000, batch_size=2,
                    translate_px=0, alpha=8.0, rotation_deg=8.0, steps_per_epoch=50),
        InferenceConfig(local_iterations=6),
    )


def get_preset(name: str, ndim: int) -> Preset:
    """The preset `name` for `ndim`-D images.

    'synthetic': the package's generated images (2D 256 px at 1 mm, 3D 64^3 at
    1.5 mm); 'ceph': 2D cephalograms with 0.1 mm pixels (the ISBI 2015 recipe);
    'ct': CT volumes, global 2 mm, local 0.75 mm, alpha 8 (the paper's CT
    weight); 'mr_head': head MR (typically 1 mm voxels), global 2 mm, local
    1 mm, alpha 2 (the paper's MR weight); 'synthetic3d': the volume benchmark.
    """
    if name not in PRESETS:
        raise ConfigError(f"preset must be one of {PRESETS}, got {name!r}")
    if ndim not in (2, 3):
        raise ConfigError(f"ndim must be 2 or 3, got {ndim!r}")
    if name == "ceph":
        if ndim != 2:
            raise ConfigError(f"preset 'ceph' is for 2D cephalograms, not {ndim}D images")
        return _ceph().validate()
    if name in VOLUME_PRESETS:
        if ndim != 3:
            raise ConfigError(f"preset {name!r} is for 3D volumes, not {ndim}D images")
        if name == "synthetic3d":
            return _synthetic3d().validate()
        settings = {"ct": dict(global_spacing=2.0, local_spacing=0.75, alpha=8.0),
                    "mr_head": dict(global_spacing=2.0, local_spacing=1.0, alpha=2.0)}[name]
        return _volume(name, **settings).validate()
    return _synthetic(ndim).validate()


def default_config(stage: str, ndim: int, preset: str = "synthetic") -> StageConfig:
    """One stage of a preset: settings that train in minutes on a 2-core CPU."""
    return get_preset(preset, ndim).stage(stage)
