r"""Ablation of one ISBI 2015 stage over the k-fold models, at a fraction of a fold's cost.

  .venv/bin/python benchmarks/isbi2015_stage_ablation.py --data=../shared/data/isbi2015 \
      --stage=global --name=canvas --set=canvas=0.5 --folds=0,1,2,3,4
  .venv/bin/python benchmarks/isbi2015_stage_ablation.py --data=../shared/data/isbi2015 \
      --stage=local --name=deep --set='net={"blocks_per_stage": 2}'
  .venv/bin/python benchmarks/isbi2015_stage_ablation.py --data=../shared/data/isbi2015 \
      --stage=local --compose=add --name=seed1 --set=seed=1 --set=steps=4000

For each fold it trains one stage of the ceph preset, with the --set settings
changed, on that fold's training images, and composes it with the other stage
of the fold's newest exported model (saved_models/isbi2015_kfold/fold<k>/);
with --compose=add, a local stage joins the fold model's local nets as one more
member of its ensemble instead of replacing them. The
two stages train apart (the local one on sub-images around the true landmarks,
whatever the global stage does), so the composite is the model the whole recipe
with those settings would train, up to the other stage's training noise. The
composite is exported to <workdir>/<name>/models/fold<k>/1 and its held-out
predictions go to <workdir>/<name>/kfold/fold<k>.csv, as the k-fold recipe
writes them, so the usual benchmarks take them:

  benchmarks/isbi2015_folds.py --predictions=<workdir>/<name>/kfold
  benchmarks/isbi2015_calibrate.py --predictions=<workdir>/<name>/kfold
  benchmarks/isbi2015_robustness.py --models=<workdir>/<name>/models

Each fold is resumable (the stage checkpoints) and skipped once its CSV exists.
"""

import dataclasses
import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_string("data", "../shared/data/isbi2015", "The isbi2015 directory (images/, senior.csv, junior.csv).")
flags.DEFINE_enum("stage", "global", ["global", "local"], "The stage to train; the other comes from --fold_models.")
flags.DEFINE_string("name", None, "Name of the variant (its directory under --workdir).")
flags.DEFINE_multi_string("set", [], "A setting of the stage to change, key=JSON value (canvas=0.5, zoom=[0.6,1.45], "
                          "net={\"blocks_per_stage\": 2}: a dict changes those fields of a nested setting); "
                          "repeat the flag for several.")
flags.DEFINE_enum("compose", "replace", ["replace", "add"],
                  "replace: the trained stage takes the place of the fold model's; add (local only): it joins "
                  "the fold model's local nets, and the estimate is their mean.")
flags.DEFINE_list("folds", ["0", "1", "2", "3", "4"], "Folds to run.")
flags.DEFINE_string("fold_models", "saved_models/isbi2015_kfold", "The k-fold recipe's fold models (fold<k>/<v>).")
flags.DEFINE_string("workdir", "build/ablation", "Where each variant's shards, stages, models and CSVs go.")
flags.DEFINE_integer("num_folds", 5, "K of the recipe's K-fold split.")
flags.DEFINE_integer("split_seed", 0, "Seed of the recipe's fold split.")
flags.DEFINE_float("spacing", 0.1, "mm per pixel of the images.")
FLAGS = flags.FLAGS


def parse_settings(items) -> dict:
    """{'canvas': 0.5, ...} from key=JSON items; a JSON list becomes a tuple, as StageConfig holds it."""
    from lmk_tf.method.config import StageConfig

    known = {f.name for f in dataclasses.fields(StageConfig)} - {"stage", "ndim"}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"isbi2015_stage_ablation: --set {item!r}: give key=value with a key of "
                             f"{sorted(known)}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"isbi2015_stage_ablation: --set {item!r}: the value is not JSON") from None
        out[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def changed_config(config, changes):
    """`config` with `changes`; a dict value changes only the named fields of a nested dataclass."""
    from lmk_tf.errors import ConfigError

    resolved = {}
    for key, value in changes.items():
        current = getattr(config, key)
        if isinstance(value, dict):
            if not dataclasses.is_dataclass(current):
                raise SystemExit(f"isbi2015_stage_ablation: --set {key}: a dict value is only for nested settings")
            fields = {f.name for f in dataclasses.fields(current)}
            unknown = set(value) - fields
            if unknown:
                raise SystemExit(f"isbi2015_stage_ablation: --set {key}: unknown fields {sorted(unknown)}; "
                                 f"known: {sorted(fields)}")
            value = dataclasses.replace(current, **{k: tuple(v) if isinstance(v, list) else v
                                                    for k, v in value.items()})
        resolved[key] = value
    try:
        return dataclasses.replace(config, **resolved).validate()
    except (ConfigError, TypeError) as e:
        raise SystemExit(f"isbi2015_stage_ablation: --set {FLAGS.set}: {e}") from None


def run_fold(fold, samples, names, preset, config, variant_dir):
    from lmk_tf import recipe
    from lmk_tf.data import sources
    from lmk_tf.evaluation.predictions import predict_held_out, write_predictions_csv
    from lmk_tf.export.layout import list_versions
    from lmk_tf.export.reload import add_local_member, rebuild, replace_stage
    from lmk_tf.export.savedmodel import export_pipeline
    from lmk_tf.method.model_dir import load_stage
    from lmk_tf.serving.local import LocalModel
    from lmk_tf.training.trainer import train_stage

    csv_path = os.path.join(variant_dir, "kfold", f"fold{fold}.csv")
    if os.path.exists(csv_path):
        print(f"== fold {fold}: {csv_path} exists, skipped", flush=True)
        return
    source_model = os.path.join(FLAGS.fold_models, f"fold{fold}")  # rebuild() takes its newest version
    if not list_versions(source_model):
        raise SystemExit(f"isbi2015_stage_ablation: no exported model in {source_model} (train fold {fold} first)")
    train, held_out = sources.split(samples, fold=fold, num_folds=FLAGS.num_folds, seed=FLAGS.split_seed)
    work = os.path.join(variant_dir, f"fold{fold}")
    data_dir, model_dir = os.path.join(work, "data"), os.path.join(work, "model")
    t0 = time.time()
    recipe.prepare(preset, data_dir, train, names, source={"combine": "mean", "spacing": FLAGS.spacing})
    if not recipe.already_trained(config, os.path.join(model_dir, FLAGS.stage)):
        print(f"== fold {fold}: training the {FLAGS.stage} stage, {config.steps} steps", flush=True)
        train_stage(config, data_dir, model_dir, inference=preset.inference)
    print(f"== fold {fold}: {FLAGS.stage} stage ready ({time.time() - t0:.0f}s)", flush=True)
    _, net = load_stage(model_dir, FLAGS.stage)
    source = rebuild(source_model, calibration=None)
    if FLAGS.compose == "add":
        composite = add_local_member(source, net, dataclasses.asdict(config))
    else:
        composite = replace_stage(source, FLAGS.stage, net, dataclasses.asdict(config))
    base = os.path.join(variant_dir, "models", f"fold{fold}")
    version = os.path.join(base, "1")
    if not os.path.isdir(version):
        other = "local" if FLAGS.stage == "global" else "global"
        how = (f"local stage with {FLAGS.set} added to the local nets of {source_model}" if FLAGS.compose == "add"
               else f"{FLAGS.stage} stage with {FLAGS.set}, {other} stage of {source_model}")
        extra = {"ablation": f"{FLAGS.name}: {how}",
                 "held_out_fold": f"{fold} of {FLAGS.num_folds} (split seed {FLAGS.split_seed})"}
        export_pipeline(composite, base, version=1, warmup_shape=(480, 388),
                        warmup_spacing=[FLAGS.spacing, FLAGS.spacing], extra_info=extra)
    rows = predict_held_out(LocalModel(version), held_out, names)
    write_predictions_csv(csv_path, rows)
    errors = [r["error_mm"] for r in rows]
    print(f"== fold {fold}: held-out MRE {sum(errors) / len(errors):.3f} mm over {len(errors)} landmarks; "
          f"{csv_path} ({time.time() - t0:.0f}s)", flush=True)


def main(argv):
    del argv
    from lmk_tf.errors import ConfigError, ModelError
    from lmk_tf.method.presets import get_preset

    # The settings are checked before TensorFlow loads: a typo costs a second, not a start-up.
    if not FLAGS.name:
        raise SystemExit("isbi2015_stage_ablation: give --name (the variant's directory)")
    if FLAGS.compose == "add" and FLAGS.stage != "local":
        raise SystemExit("isbi2015_stage_ablation: --compose=add is for --stage=local (a local ensemble member)")
    changes = parse_settings(FLAGS.set)
    preset = get_preset("ceph", 2)
    config = changed_config(preset.stage(FLAGS.stage), changes)
    # The variant's own shards: a changed spacing is prepared at that spacing.
    preset = dataclasses.replace(preset, **{f"{FLAGS.stage}_config": config})

    from lmk_tf import cli

    cli.import_tensorflow_quietly()
    cli.quiet_logs()  # the SavedModel writer's INFO lines would bury the progress
    from lmk_tf.data import sources
    d = FLAGS.data
    samples, names = sources.table_source(
        os.path.join(d, "images"), [os.path.join(d, "senior.csv"), os.path.join(d, "junior.csv")],
        spacing=FLAGS.spacing, combine="mean")
    variant_dir = os.path.join(FLAGS.workdir, FLAGS.name)
    print(f"== variant {FLAGS.name!r}: {FLAGS.stage} stage with {changes or 'the preset as it is'}"
          + (", added to the fold model's local nets" if FLAGS.compose == "add" else ""), flush=True)
    for fold in (int(f) for f in FLAGS.folds):
        try:
            run_fold(fold, samples, names, preset, config, variant_dir)
        except (ConfigError, ModelError) as e:  # e.g. a stage directory trained with other settings
            raise SystemExit(f"isbi2015_stage_ablation: fold {fold}: {e}") from None


if __name__ == "__main__":
    app.run(main)
