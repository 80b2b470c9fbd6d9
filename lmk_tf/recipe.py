"""The recipe, written once: prepare -> train both stages -> export and/or evaluate.

`make demo`, the ISBI 2015 recipe, the synthetic benchmark and the tests' tiny
model all run these functions, so they share one rule for work already done:
prepared shards and trained stages are reused only when they were made with
exactly the current settings, and refused, naming the setting that differs,
otherwise. Figures from a stage an older recipe trained would be figures the
current recipe never produced.

Evaluation always runs the exported SavedModel in-process (`LocalModel`), the
graph that lmk-serve and TF Serving answer with.

Layout of a work directory:

    <workdir>/data/    shards, dataset.json, recipe.json (the training images used)
    <workdir>/model/   the trained stages, dataset.json, inference.json
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

from lmk_tf.data.prepare import prepare_records
from lmk_tf.data.sources import Sample
from lmk_tf.errors import ConfigError
from lmk_tf.evaluation import calibration, report
from lmk_tf.export.savedmodel import export
from lmk_tf.method.config import StageConfig
from lmk_tf.method.presets import Preset
from lmk_tf.serving.local import LocalModel
from lmk_tf.training.trainer import train_stage

RECORD_FILE = "recipe.json"

Log = Callable[[str], None] | None


def progress(message: str):
    """The recipe's progress line on stdout."""
    print(f"== {message}", flush=True)


@dataclasses.dataclass
class Result:
    """What one run of the recipe did.

    Attributes:
      data_dir: the prepared shards.
      model_dir: the trained stages.
      prepare_seconds: time spent preparing shards (0 when they were reused).
      train_seconds: stage -> seconds of training in this run (reused stages absent).
      saved_model: the exported version directory, if the run exported.
      summary: the evaluation summary, if the run evaluated.
      calibration: the uncertainty map fitted on `calibrate_on`, if given.
    """

    data_dir: str
    model_dir: str
    prepare_seconds: float
    train_seconds: dict[str, float]
    saved_model: str | None = None
    summary: dict | None = None
    calibration: dict | None = None


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out


def setting_changes(saved: dict, wanted: dict) -> list[str]:
    """'key: old -> new' for every setting of `wanted` that `saved` has otherwise."""
    saved, wanted = _flat(saved), _flat(wanted)
    return [f"{k}: {saved.get(k)!r} -> {v!r}" for k, v in wanted.items() if saved.get(k) != v]


def _refuse(path: str, what: str, changes: list[str]):
    raise ConfigError(f"{path} {what} with other settings ({'; '.join(changes)}); "
                      "delete it or use another work directory")


def data_settings(preset: Preset, samples: Sequence[Sample], landmark_names: Sequence[str]) -> dict:
    """What dataset.json must say for shards of `samples` prepared for `preset`."""
    return {"ndim": preset.ndim, "landmark_names": list(landmark_names),
            "global_spacing": float(preset.global_config.spacing),
            "local_spacing": float(preset.local_config.spacing), "train_images": len(samples)}


def check_prepared(data_dir: str, preset: Preset, samples: Sequence[Sample], landmark_names: Sequence[str],
                   source: dict | None = None):
    """Refuses shards in `data_dir` that were prepared from other images or at other settings."""
    with open(os.path.join(data_dir, "dataset.json")) as f:
        info = json.load(f)
    saved = {**info, "train_images": info.get("counts", {}).get("train")}
    changes = setting_changes(saved, data_settings(preset, samples, landmark_names))
    record_path = os.path.join(data_dir, RECORD_FILE)
    if os.path.exists(record_path):  # absent for shards prepared by hand (lmk-prepare)
        with open(record_path) as f:
            record = json.load(f)
        ids = [s.image_id for s in samples]
        if record.get("image_ids") != ids:
            other = len(set(ids) - set(record.get("image_ids", [])))
            changes.append(f"training images: {other} of the {len(ids)} are not among those prepared")
        changes += setting_changes(record.get("source", {}), dict(source or {}))
    if changes:
        _refuse(data_dir, "was prepared", changes)


def stage_data_dir(preset: Preset, data_dir: str, config: StageConfig) -> str:
    """Where stage `config` of `preset` reads its shards: `data_dir`, or, for a local member at
    another spacing than the local stage's, a directory of its own beside it."""
    if config.stage == "local" and config.spacing != preset.local_config.spacing:
        return f"{data_dir}-local-{config.spacing:g}mm"
    return data_dir


def prepare(preset: Preset, data_dir: str, samples: Sequence[Sample], landmark_names: Sequence[str], *,
            source: dict | None = None, log: Log = progress) -> float:
    """Shards of `samples` for every stage; returns the seconds it took (0 when reused).

    Local members at another spacing than the local stage's get their own
    shards (`stage_data_dir`).

    Args:
      preset: gives the stages' spacings.
      data_dir: where the shards go.
      samples: the training images.
      landmark_names: the L names, in the samples' order.
      source: settings of where the samples came from that their ids do not
        show (e.g. {'combine': 'mean'}); a rerun with others is refused.
      log: takes each progress line (None: quiet).
    """
    seconds = _prepare_shards(preset, data_dir, samples, landmark_names, source, log)
    for _, member in preset.member_stages:
        member_dir = stage_data_dir(preset, data_dir, member)
        if member_dir != data_dir:
            at = dataclasses.replace(preset, local_config=member, local_members=())
            seconds += _prepare_shards(at, member_dir, samples, landmark_names, source, log)
    return seconds


def _prepare_shards(preset, data_dir, samples, landmark_names, source, log) -> float:
    if os.path.exists(os.path.join(data_dir, "dataset.json")):
        check_prepared(data_dir, preset, samples, landmark_names, source)
        if log:
            log(f"training data already prepared in {data_dir}")
        return 0.0
    if log:
        log(f"preparing {len(samples)} training images ({preset.ndim}D) -> {data_dir}")
    t = time.time()
    os.makedirs(data_dir, exist_ok=True)
    # Written first: if preparing is cut short, dataset.json is missing and a rerun starts over.
    with open(os.path.join(data_dir, RECORD_FILE), "w") as f:
        json.dump({"image_ids": [s.image_id for s in samples], "source": dict(source or {})}, f, indent=1)
    prepare_records(((s.image_id, s.load(), s.points) for s in samples), data_dir, split="train",
                    landmark_names=list(landmark_names), global_spacing=preset.global_config.spacing,
                    local_spacing=preset.local_config.spacing, log=sys.stdout if log else None)
    return time.time() - t


def already_trained(config: StageConfig, stage_dir: str) -> bool:
    """True when the stage is trained with exactly `config`; an error when it has other settings.

    A stage started with other settings and cut short is refused too: resuming
    it would mix the two.
    """
    if not os.path.exists(os.path.join(stage_dir, "config.json")):
        return False
    saved = StageConfig.load(stage_dir)
    done = os.path.exists(os.path.join(stage_dir, "model.keras"))
    changes = setting_changes(dataclasses.asdict(saved), dataclasses.asdict(config))
    if changes:
        _refuse(stage_dir, "was trained" if done else "holds a partly trained stage", changes)
    return done


def train(preset: Preset, data_dir: str, model_dir: str, *, log: Log = progress, verbose=0) -> dict[str, float]:
    """Trains the stages not yet trained with the preset's settings; returns stage -> seconds.

    Every stage is checked before any trains, so a refusal costs no training.
    The preset's inference settings go to <model_dir>/inference.json either way.
    """
    preset.validate()
    stages = [(c.stage, c) for c in preset.stages] + preset.member_stages
    done = {name: already_trained(c, os.path.join(model_dir, name)) for name, c in stages}
    seconds, t0 = {}, time.time()
    for name, config in stages:
        if done[name]:
            if log:
                log(f"{name} stage already trained in {model_dir}")
            continue
        if log:
            log(f"training the {name} stage: {config.steps} steps ({time.time() - t0:.0f}s so far)")
        t = time.time()
        train_stage(config, stage_data_dir(preset, data_dir, config), model_dir, inference=preset.inference,
                    verbose=verbose, stage_dir_name=name)
        seconds[name] = time.time() - t
        if log:
            log(f"{name} stage trained in {seconds[name]:.0f}s "
                f"({seconds[name] / config.steps * 1000:.0f} ms/step)")
    preset.inference.save(model_dir)
    return seconds


def evaluate_saved_model(saved_model: str, samples: Sequence[Sample], landmark_names: Sequence[str],
                         out_dir: str, *, overlays: int = 5, log: Log = progress) -> dict:
    """The report of a SavedModel (version or base directory) on `samples`, as served."""
    model = LocalModel(saved_model)
    if log:
        log(f"evaluating {model.path} on {len(samples)} images -> {out_dir}")
    return report.evaluate(model, list(samples), list(landmark_names), out_dir, overlays=overlays,
                           log=sys.stdout if log else None)


def evaluate(model_dir: str, samples: Sequence[Sample], landmark_names: Sequence[str], out_dir: str, *,
             overlays: int = 5, presence_threshold: float | None = None, local_iterations: int | None = None,
             calibration: dict | None = None, log: Log = progress) -> dict:
    """Exports the trained stages to a temporary SavedModel and evaluates that.

    The inference settings are the model directory's (inference.json) unless
    given here, exactly as `lmk-export` would export them; `calibration` is
    the uncertainty map it carries (None: uncalibrated).
    """
    with tempfile.TemporaryDirectory(prefix="lmk-evaluate-") as tmp:
        path = export(model_dir, os.path.join(tmp, "evaluated"), presence_threshold=presence_threshold,
                      local_iterations=local_iterations, calibration=calibration)
        return evaluate_saved_model(path, samples, landmark_names, out_dir, overlays=overlays, log=log)


def run(preset: Preset, workdir: str, samples: Sequence[Sample], landmark_names: Sequence[str], *,
        source: dict | None = None, export_to: str | None = None, export_options: dict | None = None,
        evaluate_on: Sequence[Sample] | None = None, calibrate_on: Sequence[Sample] | None = None,
        report_dir: str | None = None, overlays: int = 3, log: Log = progress, verbose=0) -> Result:
    """The whole recipe in `workdir`: prepare, train, then export and/or evaluate.

    Args:
      preset: every setting (both stages, inference).
      workdir: holds data/ and model/.
      samples: the training images.
      landmark_names: the L names.
      source: see `prepare`.
      export_to: a base directory to export a new version to (None: no export).
      export_options: more arguments of `export` (version, warmup_shape, extra_info, ...).
      evaluate_on: held-out images to evaluate on (None: no evaluation); the
        exported version if there is one, else a temporary export.
      calibrate_on: validation images, apart from the training and the
        held-out ones, on which `expected_error_mm` and `radius90_mm` are
        calibrated before the export (None: the export_options' calibration,
        or none).
      report_dir: where the report goes (default <workdir>/report).
      overlays: overlay pictures of the worst images in the report.
      log: takes each progress line (None: quiet).
      verbose: Keras' verbosity while training (0: one line per epoch).
    """
    data_dir, model_dir = os.path.join(workdir, "data"), os.path.join(workdir, "model")
    prepare_seconds = prepare(preset, data_dir, samples, landmark_names, source=source, log=log)
    result = Result(data_dir, model_dir, prepare_seconds,
                    train(preset, data_dir, model_dir, log=log, verbose=verbose))
    options = dict(export_options or {})
    if calibrate_on is not None:
        if log:
            log(f"calibrating the predicted error on {len(calibrate_on)} validation images")
        options["calibration"] = calibration.fit_for_model_dir(model_dir, calibrate_on, landmark_names)
        result.calibration = options["calibration"]
    if export_to is not None:
        result.saved_model = export(model_dir, export_to, **options)
        if log:
            log(f"exported {result.saved_model}")
    if evaluate_on is not None:
        out_dir = report_dir or os.path.join(workdir, "report")
        if result.saved_model:
            result.summary = evaluate_saved_model(result.saved_model, evaluate_on, landmark_names, out_dir,
                                                  overlays=overlays, log=log)
        else:
            result.summary = evaluate(model_dir, evaluate_on, landmark_names, out_dir, overlays=overlays,
                                      calibration=options.get("calibration"), log=log)
    return result
