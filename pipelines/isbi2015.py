"""The ISBI 2015 cephalometric recipe: prepare, train both stages, then export or evaluate.

  make isbi2015 DATA=../shared/data/isbi2015            # all 150 images -> saved_models/isbi2015_ceph/<v>/
  make isbi2015-cv DATA=../shared/data/isbi2015         # fold 0 of 5 held out -> docs/isbi2015/
  python -m pipelines.isbi2015 --data=DIR --fold=0      # what the make targets run

Ground truth is the mean of the two doctors (--combine=first: senior only).
Images are 0.1 mm JPEGs without spacing tags, so --spacing defaults to 0.1.
"""

import dataclasses
import json
import os
import sys
import time

from absl import flags

from lmk_tf import cli

cli.import_tensorflow_quietly()
from lmk_tf import recipe  # noqa: E402
from lmk_tf.data import sources  # noqa: E402
from lmk_tf.errors import ConfigError  # noqa: E402
from lmk_tf.method.config import StageConfig  # noqa: E402
from lmk_tf.method.presets import get_preset  # noqa: E402
from lmk_tf.method.scale import reference_distances  # noqa: E402
from lmk_tf.method.shape import shape_weights  # noqa: E402

flags.DEFINE_string("data", None, "The isbi2015 directory (images/, senior.csv, junior.csv).")
flags.DEFINE_string("workdir", "build/isbi2015", "Scratch directory for shards and checkpoints.")
flags.DEFINE_integer("fold", -1, "Held-out fold (-1: train on all images and export).")
flags.DEFINE_integer("num_folds", 5, "K of the K-fold split.", lower_bound=2)
flags.DEFINE_integer("split_seed", 0, "Seed of the fold split.")
flags.DEFINE_enum("combine", "mean", ["mean", "first"], "Truth: mean of both doctors or senior only.")
flags.DEFINE_float("spacing", 0.1, "mm per pixel of the images.")
flags.DEFINE_integer("global_steps", None, "Global-stage steps (default: the ceph preset's).")
flags.DEFINE_integer("local_steps", None, "Local-stage steps (default: the ceph preset's).")
flags.DEFINE_float("presence_threshold", None,
                   "Global confidence (summed cell probabilities, capped at 1) below which a landmark "
                   "is reported absent (default: the ceph preset's, 0: every ISBI cephalogram shows "
                   "all 19 landmarks, so each is always reported, with its confidence).")
flags.DEFINE_integer("version", None, "Version to export as (default: one above the newest in --export_base).")
flags.DEFINE_string("export_base", "saved_models/isbi2015_ceph", "Where fold -1 exports to.")
flags.DEFINE_string("report", "docs/isbi2015", "Where a held-out fold's report goes.")
flags.DEFINE_string("fold_models", "saved_models/isbi2015_kfold",
                    "Where a held-out fold's model is exported (<fold_models>/fold<k>/1/), for the robustness "
                    "benchmark and for re-running its predictions.")
flags.DEFINE_string("predictions", "docs/isbi2015/kfold",
                    "Where a held-out fold's predictions with their uncertainty signals go (fold<k>.csv, small "
                    "enough to commit; the pooled figures and the calibration read them).")
flags.DEFINE_bool("from_fold_model", False,
                  "Held-out fold: train nothing; take the fold's newest exported model (<fold_models>/fold<k>/), "
                  "exported again first if the recipe's inference settings changed since, and predict its held-out "
                  "images (for folds whose training directory is gone).")
flags.DEFINE_bool("from_export", False,
                  "Fold -1: export the newest version in --export_base again as the next one, with the "
                  "recipe's inference settings, the training images' statistics (head size, shape weights) "
                  "and --calibration; only what it lacks of the recipe trains: a stage whose settings the "
                  "recipe changed since (it replaces the export's), local ensemble members it lacks (added).")
flags.DEFINE_string("calibration", "docs/isbi2015/calibration.json",
                    "Fold -1: the uncertainty calibration (benchmarks/isbi2015_calibrate.py --output) the exported "
                    "model carries; a missing file exports the uncalibrated default, with a warning.")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    t0 = time.time()
    d = FLAGS.data
    samples, names = sources.table_source(
        os.path.join(d, "images"), [os.path.join(d, "senior.csv"), os.path.join(d, "junior.csv")],
        spacing=FLAGS.spacing, combine=FLAGS.combine)
    train, held_out = sources.split(samples, fold=FLAGS.fold, num_folds=FLAGS.num_folds, seed=FLAGS.split_seed)
    tag = "all" if FLAGS.fold < 0 else f"fold{FLAGS.fold}"
    preset = (get_preset("ceph", 2).with_steps(FLAGS.global_steps, FLAGS.local_steps)
              .with_inference(presence_threshold=FLAGS.presence_threshold))
    exporting = FLAGS.fold < 0
    extra = {"training_data": "ISBI 2015 challenge training set (150 images), research use only; cite Wang "
             "et al., Medical Image Analysis 31, 2016", "ground_truth": FLAGS.combine}
    # The training heads' size, against which the served graph measures each image's (normalise_scale).
    points_mm = [s.points * FLAGS.spacing for s in train]
    reference = reference_distances(points_mm)
    # The training heads' shape, against which the served graph checks each landmark (shape_mm).
    options = dict(warmup_shape=(480, 388), warmup_spacing=[0.1, 0.1], extra_info=extra,
                   reference_distances_mm=reference, shape_weights=shape_weights(points_mm))
    if FLAGS.from_fold_model and exporting:
        raise ConfigError("--from_fold_model is for a held-out fold (--fold=0..K-1); for --fold=-1 give --from_export")
    if FLAGS.from_export and not exporting:
        raise ConfigError("--from_export is for --fold=-1; for a held-out fold give --from_fold_model")
    if FLAGS.from_export:
        replaced, members, keep_members = stages_to_train(FLAGS.export_base, preset,
                                                          os.path.join(FLAGS.workdir, tag), train, names)
        path = export_again(FLAGS.export_base, preset, dict(options, calibration=read_calibration(names)),
                            replaced=replaced, members=members, keep_members=keep_members)
        # Each stage or member was trained now or reused from --workdir (the lines above say which).
        changed = ([f"replaced: {', '.join(f'{stage} stage' for stage in replaced)}"] if replaced else []) + (
            [f"{'added' if keep_members else 'in place of its own'}: {len(members)} local member(s)"]
            if members else [])
        print(f"exported: {path}")
        print(f"total {time.time() - t0:.0f}s ({(time.time() - t0) / 60:.1f} min; "
              + (f"{'; '.join(changed)})" if changed else "nothing trained)"), flush=True)
        return
    if FLAGS.from_fold_model:
        result = recipe.Result(data_dir="", model_dir="", prepare_seconds=0.0, train_seconds={})
    else:
        result = recipe.run(
            preset, os.path.join(FLAGS.workdir, tag), train, names,
            source={"combine": FLAGS.combine, "spacing": FLAGS.spacing},
            export_to=FLAGS.export_base if exporting else None,
            export_options=dict(options, version=FLAGS.version, calibration=read_calibration(names))
            if exporting else None)
    if exporting:
        print(f"exported: {result.saved_model}")
        print(f"total {time.time() - t0:.0f}s ({(time.time() - t0) / 60:.1f} min: prepare, train the global "
              f"stage and {1 + len(preset.local_members)} local net(s), export)", flush=True)
        return
    extra["held_out_fold"] = f"{FLAGS.fold} of {FLAGS.num_folds} (split seed {FLAGS.split_seed})"
    saved_model = export_fold_model(preset, result.model_dir or None, options)
    result.summary = recipe.evaluate_saved_model(saved_model, held_out, names, FLAGS.report, overlays=3)
    write_fold_predictions(saved_model, held_out, names)
    from lmk_tf.evaluation.metrics import format_summary

    summary = result.summary
    print(format_summary(summary, per_landmark=True))
    if "second_annotator" in summary:
        print("inter-doctor (junior vs senior): " + format_summary(summary["second_annotator"]))
    write_report_page(summary, len(train), len(held_out), result.model_dir, preset)
    print(f"total {time.time() - t0:.0f}s", file=sys.stdout)


def _as_json(config) -> dict:
    # As model_info stores settings: tuples read back as lists.
    return json.loads(json.dumps(dataclasses.asdict(config)))


def export_fold_model(preset, model_dir, options):
    """<fold_models>/fold<k>/<v>: the fold's model with the recipe's inference settings.

    Exported once per fold and reused while the recipe is the same. When only the
    inference settings or the shape weights changed since, the next version is exported: from the trained
    stages in `model_dir`, or, without them (None), from the newest version itself.
    """
    from lmk_tf.export.contract import read_model_info
    from lmk_tf.export.layout import list_versions
    from lmk_tf.export.savedmodel import export

    base = os.path.join(FLAGS.fold_models, f"fold{FLAGS.fold}")
    versions = list_versions(base)
    if not versions:
        if model_dir is None:
            raise ConfigError(f"{base}: no exported fold model to start from; train fold {FLAGS.fold} first")
        return export(model_dir, base, version=1, **options)
    newest = versions[max(versions)]
    info = read_model_info(newest)
    changed = stage_changes(info, preset)
    if changed:
        raise ConfigError(f"{newest} holds a fold model whose {changed}; delete it or give another --fold_models")
    members = [_as_json(StageConfig.from_dict(c)) for c in info.get("extra_local_configs") or []]
    wanted_members = [_as_json(c) for _, c in preset.member_stages]
    if members != wanted_members:
        raise ConfigError(f"{newest} holds a fold model with {len(members) + 1} local net(s) trained otherwise than "
                          f"the recipe's {len(wanted_members) + 1}; delete it or give another --fold_models (or add "
                          "the missing member: benchmarks/isbi2015_stage_ablation.py --stage=local --compose=add)")
    # Every inference setting, from InferenceConfig itself: one added later is compared too.
    wanted = dataclasses.asdict(preset.inference)
    defaults = dataclasses.asdict(type(preset.inference)())
    changes = [f"{k}: {info.get(k, defaults[k])!r} -> {v!r}" for k, v in wanted.items()
               if info.get(k, defaults[k]) != v]
    if not _same(info.get("shape_weights"), options["shape_weights"]):
        changes.append("shape_weights: " + ("none" if info.get("shape_weights") is None else "others")
                       + " -> fitted on the fold's training images")
    if not changes:
        print(f"== fold {FLAGS.fold}'s model already exported: {newest}", flush=True)
        return newest
    version = max(versions) + 1
    print(f"== fold {FLAGS.fold}: {newest} answers with other inference settings ({'; '.join(changes)}); "
          f"exporting version {version}", flush=True)
    if model_dir is not None and os.path.exists(os.path.join(model_dir, "local", "model.keras")):
        return export(model_dir, base, version=version, **options)
    return export_again(newest, preset, dict(options, calibration=None), version=version)


def stage_changes(info, preset, stages=("global", "local")) -> str:
    """'<stage> stage has other settings than the recipe's (...)' for the first of `stages` of an
    export's model_info that the preset trains otherwise; '' when they are the preset's."""
    for stage in stages:
        config = preset.stage(stage)
        # Read through StageConfig, so that a setting added since the export counts with its default.
        saved = info.get(f"{stage}_config")
        saved = _as_json(StageConfig.from_dict(saved)) if saved else {}
        changes = recipe.setting_changes(saved, _as_json(config))
        if changes:
            return f"{stage} stage has other settings than the recipe's ({'; '.join(changes)})"
    return ""


def _same(a, b) -> bool:
    import numpy as np

    return a is not None and b is not None and np.allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-9)


# What the served graph takes from the training images rather than from the trained stages.
_STATISTICS = ("reference_distances_mm", "shape_weights", "calibration")


def stages_to_train(source, preset, workdir, train, names):
    """What the newest export in `source` lacks of the recipe, trained on `train` in `workdir`.

    Returns ({stage: (net, config dict)} for the global or first local stage whose settings the
    recipe changed since the export, [(net, config dict)] of local members to add, and whether
    the export's own members go first: they do not when trained otherwise than the recipe's, and
    every member of the recipe is then trained). A stage or member the export holds with the
    recipe's settings is reused; the rest train (resumable; one trained in `workdir` before is
    reused), so a change to one stage costs that stage's training, not the whole recipe's.
    """
    from lmk_tf.export.contract import read_model_info
    from lmk_tf.export.layout import resolve_model_dir
    from lmk_tf.method.model_dir import load_stage
    from lmk_tf.training.trainer import train_stage

    version_dir, _ = resolve_model_dir(source)
    info = read_model_info(version_dir)
    have = [_as_json(StageConfig.from_dict(c)) for c in info.get("extra_local_configs") or []]
    wanted = preset.member_stages
    keep = len(have) <= len(wanted) and have == [_as_json(c) for _, c in wanted[:len(have)]]
    # (directory, config, why it trains)
    todo = [(stage, preset.stage(stage), why) for stage in ("global", "local")
            if (why := stage_changes(info, preset, (stage,)))]
    todo += ([(name, config, f"lacks local member {name}") for name, config in wanted[len(have):]] if keep else
             [(name, config, f"holds local members trained otherwise ({name})") for name, config in wanted])
    if not todo:
        return {}, [], True
    data_dir, model_dir = os.path.join(workdir, "data"), os.path.join(workdir, "model")
    recipe.prepare(preset, data_dir, train, names, source={"combine": FLAGS.combine, "spacing": FLAGS.spacing})
    trained = {}
    for name, config, why in todo:
        if recipe.already_trained(config, os.path.join(model_dir, name)):
            print(f"== {name} already trained in {model_dir}", flush=True)
        else:
            print(f"== {version_dir} {why}: training it, {config.steps} steps", flush=True)
            t = time.time()
            train_stage(config, recipe.stage_data_dir(preset, data_dir, config), model_dir,
                        inference=preset.inference, stage_dir_name=name)
            print(f"== {name} trained in {time.time() - t:.0f}s", flush=True)
        trained[name] = (load_stage(model_dir, name)[1], dataclasses.asdict(config))
    replaced = {k: trained.pop(k) for k in ("global", "local") if k in trained}
    return replaced, list(trained.values()), keep


def export_again(source, preset, options, version=None, replaced=None, members=(), keep_members=True):
    """The newest version under (or the version) `source`, exported again as `version` (default: the
    next under its base) with the preset's inference settings, `options`' training statistics, the
    stages of `replaced` ({'global'|'local': (net, config dict)}) in place of its own and the local
    `members` [(net, config dict)] added to its own (or, without `keep_members`, in their place)."""
    from lmk_tf.export.layout import resolve_model_dir
    from lmk_tf.export.reload import add_local_member, rebuild, replace_stage, without_local_members
    from lmk_tf.export.savedmodel import export_pipeline

    version_dir, _ = resolve_model_dir(source)
    pipeline = rebuild(version_dir, **dataclasses.asdict(preset.inference),
                       **{k: options[k] for k in _STATISTICS})
    for stage, (net, config) in (replaced or {}).items():
        pipeline = replace_stage(pipeline, stage, net, config)
    if not keep_members:
        pipeline = without_local_members(pipeline)
    for net, config in members:
        pipeline = add_local_member(pipeline, net, config)
    rest = {k: v for k, v in options.items() if k not in _STATISTICS}
    return export_pipeline(pipeline, os.path.dirname(version_dir), version=version or FLAGS.version, **rest)


def read_calibration(names):
    from lmk_tf.evaluation.calibration import read_calibration as read

    path = FLAGS.calibration
    if not path or not os.path.exists(path):
        print(f"warning: {path} not found; the model's expected_error_mm and radius90_mm are uncalibrated "
              "(run the k-fold recipe and benchmarks/isbi2015_calibrate.py first)", file=sys.stderr)
        return None
    return read(path, names)


def write_fold_predictions(saved_model, held_out, names):
    """<predictions>/fold<k>.csv: each held-out landmark with its error and uncertainty signals."""
    from lmk_tf.evaluation.predictions import predict_held_out, write_predictions_csv
    from lmk_tf.serving.local import LocalModel

    model = LocalModel(saved_model)
    rows = predict_held_out(model, held_out, names, log=sys.stdout)
    path = write_predictions_csv(os.path.join(FLAGS.predictions, f"fold{FLAGS.fold}.csv"), rows)
    print(f"held-out predictions: {path}")


def presence_line(threshold):
    if threshold <= 0:
        return "- every landmark is reported (presence threshold 0), so every one counts in the MRE and SDR"
    return (f"- landmarks with a global confidence under {threshold:g} are reported absent"
            f" and count as missed (excluded from the MRE, failures in the SDR)")


def training_minutes(model_dir):
    """'global X min + local Y min' from the stages' training.json files."""
    parts = []
    for stage in ("global", "local"):
        path = os.path.join(model_dir, stage, "training.json")
        if os.path.exists(path):
            with open(path) as f:
                parts.append(f"{stage} {json.load(f)['seconds'] / 60:.0f} min")
    return " + ".join(parts) or "not recorded"


def write_report_page(summary, num_train, num_held_out, model_dir, preset):
    """<report>/report.md: the held-out figures with the command that made them."""
    o, g, loc = summary["overall"], preset.global_config, preset.local_config
    sdr = " / ".join(f"{o['sdr'][t]:.1f}%" for t in summary["thresholds"])
    second = summary.get("second_annotator", {}).get("overall")
    with open(os.path.join(FLAGS.report, "summary.md")) as f:
        table = f.read()
    command = (f"python -m pipelines.isbi2015 --data=DATA --fold={FLAGS.fold} --num_folds={FLAGS.num_folds} "
               f"--split_seed={FLAGS.split_seed} --combine={FLAGS.combine} --report={FLAGS.report}")
    lines = [
        "# ISBI 2015 cephalograms: held-out estimate",
        "",
        "Generated by the recipe itself (`make isbi2015-cv`, which runs:",
        f"`{command}`), on a 2-core CPU without a GPU.",
        "",
        f"- split: fold {FLAGS.fold} of {FLAGS.num_folds} (seed {FLAGS.split_seed}) of the 150 training images:"
        f" {num_train} to train, {num_held_out} held out; truth = {FLAGS.combine} of the two doctors",
        f"- global stage: {g.spacing} mm, {g.steps} steps, batch {g.batch_size}; local stage: {loc.spacing} mm,"
        f" {loc.patch_size} px sub-images, {loc.steps} steps, batch {loc.batch_size}",
        presence_line(preset.inference.presence_threshold),
        f"- training time on this CPU: {training_minutes(model_dir)};"
        f" inference {summary['seconds_per_image'] * 1000:.0f} ms per image in-process",
        "",
        f"**Held-out MRE {o['mre']:.2f} +- {o['sd']:.2f} mm** (median {o['median']:.2f} mm);"
        f" SDR at {' / '.join(f'{t:g}' for t in summary['thresholds'])} mm: {sdr}.",
    ]
    if second:
        lines.append(f"Inter-doctor difference on the same images (junior vs senior): MRE {second['mre']:.2f}"
                     f" +- {second['sd']:.2f} mm.")
    lines += [
        "",
        "These are images of the challenge's training set that the model did not see; the challenge's",
        "own test sets are not in this repository. Research use only: ISBI 2015 challenge data,",
        "Wang et al., Medical Image Analysis 31, 2016.",
        "",
        "![errors per landmark](errors_boxplot.png)",
        "![success detection rate](sdr_curve.png)",
        "",
        "## Per landmark",
        "",
        table,
    ]
    # Inside the report folder: docs/isbi2015.md is the hand-kept page (recipes tried, k-fold,
    # robustness, uncertainty) that links to it.
    page = os.path.join(FLAGS.report, "report.md")
    with open(page, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"report page: {page}")


def run():
    cli.run_app(main, required=["data"])


if __name__ == "__main__":
    run()
