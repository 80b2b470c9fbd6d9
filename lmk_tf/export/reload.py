"""An exported version back as the Keras graph it was exported from, weights and all.

An export keeps the composed graph's variables and, in assets/model_info.json,
every setting of both stages. That is enough to build the same `GlobalToLocal`
again and restore its weights from the version's checkpoint, without the
training directory: so a fold model of the k-fold recipe can be composed with
another global or local stage (a cheap ablation of one stage over all folds),
or exported again with other inference settings or calibration.
"""

from __future__ import annotations

import os

import tensorflow as tf

from lmk_tf.errors import ModelError
from lmk_tf.export.contract import read_model_info
from lmk_tf.export.layout import resolve_model_dir
from lmk_tf.method.config import StageConfig
from lmk_tf.method.graph import GlobalToLocal
from lmk_tf.training.trainer import build_stage_model

_INFERENCE = ("presence_threshold", "local_iterations", "shift_crops", "calibration", "normalise_scale",
              "reference_distances_mm", "shape_weights", "global_shifts", "member_weighting")


def rebuild(path: str, **overrides) -> GlobalToLocal:
    """The `GlobalToLocal` of a version (or the newest of a base) directory.

    `overrides` replace inference settings (presence_threshold,
    local_iterations, shift_crops, calibration, normalise_scale,
    reference_distances_mm, shape_weights, global_shifts, member_weighting); None keeps the
    version's (a version exported before member_weighting existed takes the mean).
    """
    version_dir, _ = resolve_model_dir(path)
    info = read_model_info(version_dir)
    missing = [k for k in ("landmark_names", "global_config", "local_config") if not info.get(k)]
    if missing:
        raise ModelError(f"{version_dir}: its model_info.json lacks {missing}; it cannot be rebuilt")
    unknown = set(overrides) - set(_INFERENCE)
    if unknown:
        raise ValueError(f"not inference settings: {sorted(unknown)}")
    names = info["landmark_names"]
    g, loc = StageConfig.from_dict(info["global_config"]), StageConfig.from_dict(info["local_config"])
    settings = {k: info[k] for k in _INFERENCE if info.get(k) is not None}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    members = info.get("extra_local_configs") or []
    model = GlobalToLocal(build_stage_model(g, len(names)), build_stage_model(loc, len(names)),
                          info["global_config"], info["local_config"], names, name="global_to_local",
                          extra_local_nets=[build_stage_model(StageConfig.from_dict(c), len(names)) for c in members],
                          extra_local_configs=members, **settings)
    _restore(model, version_dir)
    return model


def _recomposed(model: GlobalToLocal, **parts) -> GlobalToLocal:
    """A new `GlobalToLocal` of `model`'s nets, configs and inference settings, with `parts`
    (constructor arguments: global_net, local_config, extra_local_nets, ...) in their place."""
    kept = {k: getattr(model, k) for k in ("global_net", "local_net", "global_config", "local_config",
                                           "landmark_names", "extra_local_nets", "extra_local_configs",
                                           *_INFERENCE)}
    return GlobalToLocal(**{**kept, **parts}, name="global_to_local")


def replace_stage(model: GlobalToLocal, stage: str, net, config: dict) -> GlobalToLocal:
    """`model` with its `stage` ('global' or 'local') replaced by `net` trained with `config`
    (a StageConfig dict); the other stage and every inference setting are kept."""
    if stage not in ("global", "local"):
        raise ValueError(f"stage must be 'global' or 'local', got {stage!r}")
    return _recomposed(model, **{f"{stage}_net": net, f"{stage}_config": dict(config)})


def add_local_member(model: GlobalToLocal, net, config: dict) -> GlobalToLocal:
    """`model` with one more local net, `net` trained with `config` (a StageConfig dict; its sub-images
    of the first net's size, at its own spacing); its estimate joins the local ensemble's mean. The
    rest is kept."""
    return _recomposed(model, extra_local_nets=[*model.extra_local_nets, net],
                       extra_local_configs=[*model.extra_local_configs, dict(config)])


def without_local_members(model: GlobalToLocal, numbers=None) -> GlobalToLocal:
    """`model` without the local nets `numbers` (2 is the first after the first net; None: every one
    after the first); the rest is kept."""
    count = 1 + len(model.extra_local_nets)
    droppable = set(range(2, count + 1))
    numbers = droppable if numbers is None else set(numbers)
    if numbers - droppable:
        raise ValueError(f"local nets {sorted(numbers - droppable)} cannot be dropped: the model's are "
                         f"1-{count}, and the first stays")
    kept = [k for k in range(len(model.extra_local_nets)) if k + 2 not in numbers]
    return _recomposed(model, extra_local_nets=[model.extra_local_nets[k] for k in kept],
                       extra_local_configs=[model.extra_local_configs[k] for k in kept])


def _restore(model: GlobalToLocal, version_dir: str):
    # An export holds the variables as `model_variables` (lmk_tf.export.savedmodel) or, in
    # versions exported before that, as the tracked Keras model `pipeline`: the same
    # checkpoint keys follow from building a checkpoint of the same shape around this model.
    model({"image": tf.zeros([64] * model.ndim + [1]), "spacing": tf.ones([model.ndim])})
    loaded = tf.saved_model.load(version_dir)
    if hasattr(loaded, "model_variables"):
        checkpoint = tf.train.Checkpoint(model_variables=list(model.variables))
    else:
        checkpoint = tf.train.Checkpoint(pipeline=model)
    try:
        status = checkpoint.restore(os.path.join(version_dir, "variables", "variables"))
        status.assert_existing_objects_matched()
    except ValueError as e:  # a variable of another shape
        raise ModelError(f"{version_dir}: its weights do not fit the graph its settings describe ({e})") from None
    except AssertionError as e:
        # save_counter is the one variable a module's checkpoint never holds.
        if "save_counter" not in str(e) or "Showing 1 of 1" not in str(e):
            raise ModelError(f"{version_dir}: its weights do not fit the graph its settings describe ({e})") from None
