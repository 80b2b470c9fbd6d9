r"""Ablation of the ISBI 2015 global stage over the k-fold models, at a fifth of a fold's cost.

  .venv/bin/python benchmarks/isbi2015_global_ablation.py --data=../shared/data/isbi2015 \
      --name=canvas --set=canvas=0.3 --folds=0,1,2,3,4

For each fold it trains the ceph preset's global stage, with the --set settings
changed, on that fold's training images, and composes it with the local stage
of the fold's newest exported model (saved_models/isbi2015_kfold/fold<k>/). The local
stage trains on its own (sub-images around the true landmarks, whatever the
global stage does), so the composite is the model the whole recipe with those
settings would train, up to the local stage's training noise. The composite is
exported to <workdir>/<name>/models/fold<k>/1 and its held-out predictions go
to <workdir>/<name>/kfold/fold<k>.csv, as the k-fold recipe writes them, so
the usual benchmarks take them:

  benchmarks/isbi2015_folds.py --predictions=<workdir>/<name>/kfold
  benchmarks/isbi2015_calibrate.py --predictions=<workdir>/<name>/kfold
  benchmarks/isbi2015_robustness.py --models=<workdir>/<name>/models

Each fold is resumable (the global stage checkpoints) and skipped once its CSV exists.
"""

import dataclasses
import json
import os
import sys
import time

from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

flags.DEFINE_string("data", "../shared/data/isbi2015", "The isbi2015 directory (images/, senior.csv, junior.csv).")
flags.DEFINE_string("name", None, "Name of the variant (its directory under --workdir).")
flags.DEFINE_list("set", [], "Global-stage settings to change, key=JSON value (canvas=0.3, zoom=[0.6,1.45]).")
flags.DEFINE_list("folds", ["0", "1", "2", "3", "4"], "Folds to run.")
flags.DEFINE_string("fold_models", "saved_models/isbi2015_kfold", "The k-fold recipe's fold models (fold<k>/1).")
flags.DEFINE_string("workdir", "build/ablation", "Where each variant's shards, stages, models and CSVs go.")
flags.DEFINE_integer("num_folds", 5, "K of the recipe's K-fold split.")
flags.DEFINE_integer("split_seed", 0, "Seed of the recipe's fold split.")
FLAGS = flags.FLAGS


def parse_settings(items) -> dict:
    from lmk_tf.method.config import StageConfig

    known = {f.name for f in dataclasses.fields(StageConfig)} - {"stage", "ndim"}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in known:
            raise SystemExit(f"isbi2015_global_ablation: --set {item!r}: give key=value with a key of "
                             f"{sorted(known)}")
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            raise SystemExit(f"isbi2015_global_ablation: --set {item!r}: the value is not JSON") from None
        out[key] = tuple(parsed) if isinstance(parsed, list) else parsed
    return out


def run_fold(fold, samples, names, preset, config, variant_dir):
    from lmk_tf import recipe
    from lmk_tf.data import sources
    from lmk_tf.evaluation.predictions import predict_held_out, write_predictions_csv
    from lmk_tf.export.reload import rebuild
    from lmk_tf.export.savedmodel import export_pipeline
    from lmk_tf.method.graph import GlobalToLocal
    from lmk_tf.method.model_dir import load_stage
    from lmk_tf.serving.local import LocalModel
    from lmk_tf.training.trainer import train_stage

    csv_path = os.path.join(variant_dir, "kfold", f"fold{fold}.csv")
    if os.path.exists(csv_path):
        print(f"== fold {fold}: {csv_path} exists, skipped", flush=True)
        return
    from lmk_tf.export.layout import list_versions

    source_model = os.path.join(FLAGS.fold_models, f"fold{fold}")  # rebuild() takes its newest version
    if not list_versions(source_model):
        raise SystemExit(f"isbi2015_global_ablation: no exported model in {source_model} (train fold {fold} first)")
    train, held_out = sources.split(samples, fold=fold, num_folds=FLAGS.num_folds, seed=FLAGS.split_seed)
    work = os.path.join(variant_dir, f"fold{fold}")
    data_dir, model_dir = os.path.join(work, "data"), os.path.join(work, "model")
    t0 = time.time()
    recipe.prepare(preset, data_dir, train, names, source={"combine": "mean", "spacing": 0.1})
    if not recipe.already_trained(config, os.path.join(model_dir, "global")):
        print(f"== fold {fold}: training the global stage, {config.steps} steps", flush=True)
        train_stage(config, data_dir, model_dir, inference=preset.inference)
    print(f"== fold {fold}: global stage ready ({time.time() - t0:.0f}s)", flush=True)
    _, global_net = load_stage(model_dir, "global")
    old = rebuild(source_model, calibration=None)
    composite = GlobalToLocal(
        global_net, old.local_net, dataclasses.asdict(config), old.local_config, names,
        presence_threshold=old.presence_threshold, local_iterations=old.local_iterations,
        shift_crops=old.shift_crops, normalise_scale=old.normalise_scale,
        reference_distances_mm=old.reference_distances_mm, name="global_to_local")
    base = os.path.join(variant_dir, "models", f"fold{fold}")
    version = os.path.join(base, "1")
    if not os.path.isdir(version):
        extra = {"ablation": f"{FLAGS.name}: global stage with {FLAGS.set}, local stage of {source_model}",
                 "held_out_fold": f"{fold} of {FLAGS.num_folds} (split seed {FLAGS.split_seed})"}
        export_pipeline(composite, base, version=1, warmup_shape=(480, 388), warmup_spacing=[0.1, 0.1],
                        extra_info=extra)
    rows = predict_held_out(LocalModel(version), held_out, names)
    write_predictions_csv(csv_path, rows)
    errors = [r["error_mm"] for r in rows]
    print(f"== fold {fold}: held-out MRE {sum(errors) / len(errors):.3f} mm over {len(errors)} landmarks; "
          f"{csv_path} ({time.time() - t0:.0f}s)", flush=True)


def main(argv):
    del argv
    from lmk_tf import cli

    cli.import_tensorflow_quietly()
    cli.quiet_logs()  # the SavedModel writer's INFO lines would bury the progress
    from lmk_tf.data import sources
    from lmk_tf.method.presets import get_preset

    if not FLAGS.name:
        raise SystemExit("isbi2015_global_ablation: give --name (the variant's directory)")
    changes = parse_settings(FLAGS.set)
    preset = get_preset("ceph", 2)
    config = dataclasses.replace(preset.global_config, **changes).validate()
    d = FLAGS.data
    samples, names = sources.table_source(
        os.path.join(d, "images"), [os.path.join(d, "senior.csv"), os.path.join(d, "junior.csv")],
        spacing=0.1, combine="mean")
    variant_dir = os.path.join(FLAGS.workdir, FLAGS.name)
    print(f"== variant {FLAGS.name!r}: global stage with {changes or 'the preset as it is'}", flush=True)
    for fold in (int(f) for f in FLAGS.folds):
        run_fold(fold, samples, names, preset, config, variant_dir)


if __name__ == "__main__":
    app.run(main)
