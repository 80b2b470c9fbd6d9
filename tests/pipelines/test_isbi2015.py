"""The ISBI 2015 recipe end to end on a tiny stand-in for ../shared/data/isbi2015 (conftest.isbi_like)."""

import json
import shutil

import pytest

from tests.conftest import run_in_repo as run


def ablation(data, work, *extra):
    return run("benchmarks/isbi2015_stage_ablation.py", f"--data={data}", "--spacing=1.0", "--num_folds=2",
               "--folds=0", f"--fold_models={work}/folds", f"--workdir={work}/ablation", "--stage=local",
               *extra if any(e.startswith("--name=") for e in extra) else ("--name=deep", *extra))


def check_stage_ablation(data, work):
    """benchmarks/isbi2015_stage_ablation.py on the fold model just trained: a local stage retrained
    with other settings, composed with the fold model's global stage, predicts the held-out images."""
    # A nested setting changes only the fields named; the value of --set is JSON and may hold commas.
    settings = ["--set=steps=3", "--set=steps_per_epoch=3", '--set=net={"blocks_per_stage": 2}',
                "--set=zoom=[0.9,1.1]"]
    p = ablation(data, work, *settings)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "training the local stage, 3 steps" in p.stdout and "held-out MRE" in p.stdout
    rows = (work / "ablation" / "deep" / "kfold" / "fold0.csv").read_text().splitlines()
    assert rows[0].startswith("image,landmark,") and len(rows) == 1 + 4 * 6
    info = json.loads((work / "ablation" / "deep" / "models" / "fold0" / "1" / "assets" / "model_info.json")
                      .read_text())
    fold = json.loads((work / "folds" / "fold0" / "1" / "assets" / "model_info.json").read_text())
    assert info["global_config"] == fold["global_config"]
    local = info["local_config"]
    assert local["net"]["blocks_per_stage"] == 2 and local["steps"] == 3 and local["zoom"] == [0.9, 1.1]
    assert local["net"]["stage_filters"] == fold["local_config"]["net"]["stage_filters"]
    assert info["normalise_scale"] == fold["normalise_scale"]
    p = ablation(data, work, *settings)
    assert p.returncode == 0 and "exists, skipped" in p.stdout and "training" not in p.stdout
    # --compose=add: the local stage joins the fold model's local nets (its own and the recipe's member).
    p = ablation(data, work, "--compose=add", "--name=member", "--set=seed=1", "--set=steps=3",
                 "--set=steps_per_epoch=3")
    assert p.returncode == 0, p.stderr[-3000:]
    info = json.loads((work / "ablation" / "member" / "models" / "fold0" / "1" / "assets" / "model_info.json")
                      .read_text())
    assert info["local_config"] == fold["local_config"] and info["global_config"] == fold["global_config"]
    assert [(c["seed"], c["steps"]) for c in info["extra_local_configs"]] == [(2, 2), (3, 2), (1, 3)]
    header = (work / "ablation" / "member" / "kfold" / "fold0.csv").read_text().splitlines()[0]
    assert "ensemble_mm" in header.split(",")


def check_compose(data, work, tmp):
    """benchmarks/isbi2015_compose.py on the fold model and the ablation's member: the fold model as it
    is answers as its export did (the recipe's CSV), and a composition with the added member runs."""
    def compose(out, *extra):
        return run("benchmarks/isbi2015_compose.py", f"--data={data}", "--spacing=1.0", "--num_folds=2",
                   "--folds=0", f"--fold_models={work}/folds", f"--predictions={out}", *extra)

    p = compose(tmp / "same")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "fold 0: 3 local net(s), global_shifts=3" in p.stdout  # the ceph preset's
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("pooled_mre_mm=") and "images=4 folds=1" in last, last

    def errors(path):
        lines = path.read_text().splitlines()
        col = lines[0].split(",").index("error_mm")
        return [float(line.split(",")[col]) for line in lines[1:]]

    assert errors(tmp / "same" / "fold0.csv") == pytest.approx(errors(work / "kfold" / "fold0.csv"), abs=2e-3)
    p = compose(tmp / "weighed", "--member_weighting=inverse_variance")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "fold 0: 3 local net(s), global_shifts=3, inverse_variance: held-out MRE" in p.stdout
    p = compose(tmp / "swap", f"--add={work}/ablation/member/models", "--drop_own_members", "--global_shifts=1",
                f"--export={tmp}/models")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "fold 0: 2 local net(s), global_shifts=1" in p.stdout
    assert len((tmp / "swap" / "fold0.csv").read_text().splitlines()) == 1 + 4 * 6
    # The composite exported: the fold model's first local net and the ablation's member (seed 1) only.
    info = json.loads((tmp / "models" / "fold0" / "1" / "assets" / "model_info.json").read_text())
    assert [c["seed"] for c in info["extra_local_configs"]] == [1] and info["global_shifts"] == 1
    assert "without its members" in info["composed"]
    # One own net dropped by its number (the seed-2 twin), the others kept.
    p = compose(tmp / "one", f"--add={work}/ablation/member/models", "--drop_member=2", f"--export={tmp}/one_models")
    assert p.returncode == 0, p.stderr[-3000:]
    info = json.loads((tmp / "one_models" / "fold0" / "1" / "assets" / "model_info.json").read_text())
    assert [c["seed"] for c in info["extra_local_configs"]] == [3, 1] and "local net(s) 2" in info["composed"]
    p = compose(tmp / "bad", "--drop_member=4")
    assert p.returncode != 0 and "local nets [4] cannot be dropped: the model's are 1-3" in p.stderr
    assert "Traceback" not in p.stderr
    p = compose(tmp / "bad", f"--add={work}/nowhere")
    assert p.returncode != 0 and f"no exported model in {work}/nowhere/fold0" in p.stderr
    assert "Traceback" not in p.stderr


def check_local_start(data, work):
    """benchmarks/isbi2015_local_start.py on the fold model just trained: the model as served, its
    global stage and its local stage from the truth and from a start 1 mm off, per fold and pooled."""
    p = run("benchmarks/isbi2015_local_start.py", f"--data={data}", "--spacing=1.0", "--num_folds=2",
            "--folds=0", f"--models={work}/folds", "--offsets_mm=1", "--max_images=2")
    assert p.returncode == 0, p.stderr[-3000:]
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("model_mm=") and last.endswith(" images=2"), last
    figures = dict(item.split("=") for item in last.split()[:-1])
    assert list(figures) == ["model_mm", "global_mm", "truth_mm", "truth+1mm"]
    assert all(0 <= float(v) < 1e3 for v in figures.values()), last
    assert "per landmark, pooled" in p.stdout


def check_robustness(data, work):
    """benchmarks/isbi2015_robustness.py on the fold model just trained: the table, the summary line,
    and (--list_mm=0: every landmark) a line per landmark naming its perturbation, image and error."""
    p = run("benchmarks/isbi2015_robustness.py", f"--data={data}", "--spacing=1.0", "--num_folds=2", "--folds=0",
            f"--models={work}/folds", "--max_images=1", "--perturbations=none,gamma1.6", "--list_mm=0")
    assert p.returncode == 0, p.stderr[-3000:]
    lines = p.stdout.strip().splitlines()
    assert lines[-1].startswith("worst_ratio=") and lines[-1].endswith(" images=1"), lines[-1]
    listed = [line.split() for line in lines if line.startswith("over 0 mm: ")]
    assert len(listed) == 2 * 6  # both perturbations, the stand-in's 6 landmarks
    names = (data / "senior.csv").read_text().splitlines()[0]
    for words in listed:
        assert words[3] in ("none", "gamma1.6") and words[4].endswith(".png") and f",{words[5]}_x," in names, words
    errors = [float(words[6]) for words in listed]
    assert errors == sorted(errors, reverse=True)
    assert int(dict(item.split("=") for item in lines[-1].split())["over10mm"]) == sum(e > 10 for e in errors)


def recipe(data, work, report, *extra, fold=0, num_folds=2):
    return run("-m", "pipelines.isbi2015", f"--data={data}", f"--fold={fold}", f"--num_folds={num_folds}",
               "--spacing=1.0", "--global_steps=2", "--local_steps=2", f"--workdir={work}",
               f"--report={report}", f"--fold_models={work}/folds", f"--predictions={work}/kfold", *extra)


@pytest.mark.slow
def test_folds_train_reuse_refuse_stale_pool_calibrate_and_the_final_model_carries_the_calibration(
        isbi_like, tmp_path):
    # One test, because each step needs the folds trained by the steps before it.
    work, report = tmp_path / "work", tmp_path / "docs" / "isbi2015"
    p = recipe(isbi_like, work, report, num_folds=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "== training the local stage" in p.stdout
    page = (report / "report.md").read_text()
    assert "Held-out MRE" in page and "--fold=0" in page
    assert "Inter-doctor difference" in page  # two tables: the junior/senior comparison is there
    summary = json.loads((report / "summary.json").read_text())
    assert summary["n_images"] == 4
    assert summary["overall"]["missed"] == 0  # presence threshold 0: every landmark reported
    # The fold's model and its held-out predictions, for pooling and calibration later.
    assert (work / "folds" / "fold0" / "1" / "saved_model.pb").exists()
    rows = (work / "kfold" / "fold0.csv").read_text().splitlines()
    assert rows[0].startswith("image,landmark,") and "shift_mm" in rows[0] and len(rows) == 1 + 4 * 6
    check_stage_ablation(isbi_like, work)
    check_compose(isbi_like, work, tmp_path / "compose")
    check_local_start(isbi_like, work)
    check_robustness(isbi_like, work)

    # Same settings: the trained stages are reused, the evaluation runs again.
    p = recipe(isbi_like, work, report, num_folds=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "local stage already trained" in p.stdout
    assert "fold 0's model already exported" in p.stdout

    # Other settings: refused, naming the directory and the setting, not silently reused.
    p = recipe(isbi_like, work, report, "--local_steps=3", num_folds=2)
    assert p.returncode == 2
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "steps: 2 -> 3" in lines[0] and str(work) in lines[0], p.stderr

    # Inference settings changed since the fold's export (here: the export is made to say it ran
    # without the scale-normalised local stage) and its training directory is gone: the next
    # version is rebuilt from the export itself, with the recipe's settings; nothing trains.
    info_path = work / "folds" / "fold0" / "1" / "assets" / "model_info.json"
    info = json.loads(info_path.read_text())
    assert info["normalise_scale"] is True and len(info["reference_distances_mm"]) == 15
    assert len(info["shape_weights"]) == 6  # fitted on the fold's training images
    info_path.write_text(json.dumps({**info, "normalise_scale": False, "shape_weights": None}))
    shutil.rmtree(work / "fold0")
    p = recipe(isbi_like, work, report, "--from_fold_model", num_folds=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "normalise_scale: False -> True; shape_weights: none -> fitted on the fold's training images); " \
           "exporting version 2" in p.stdout and "== training" not in p.stdout
    again = json.loads((work / "folds" / "fold0" / "2" / "assets" / "model_info.json").read_text())
    assert again["normalise_scale"] is True and again["reference_distances_mm"] == info["reference_distances_mm"]
    assert again["shape_weights"] == info["shape_weights"]
    assert len((work / "kfold" / "fold0.csv").read_text().splitlines()) == 1 + 4 * 6
    p = recipe(isbi_like, work, report, "--from_fold_model", num_folds=2)
    assert "already exported: " in p.stdout and str(work / "folds" / "fold0" / "2") in p.stdout

    p = run("benchmarks/isbi2015_folds.py", f"--reports={report}")
    assert p.returncode == 0, p.stderr[-3000:]
    assert p.stdout.strip().splitlines()[-1].startswith("pooled_mre_mm=")
    assert "images=4 folds=1" in p.stdout

    p = recipe(isbi_like, work, tmp_path / "r1", fold=1, num_folds=2)
    assert p.returncode == 0, p.stderr[-3000:]
    p = run("benchmarks/isbi2015_folds.py", f"--predictions={work}/kfold")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "images=8 folds=2" in p.stdout and "over10mm=" in p.stdout
    calibration = tmp_path / "calibration.json"
    p = run("benchmarks/isbi2015_calibrate.py", f"--predictions={work}/kfold", f"--output={calibration}",
            f"--plots={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    last = p.stdout.strip().splitlines()[-1]
    assert last.startswith("spearman=") and "folds=2 n=48" in last
    assert (tmp_path / "calibration.png").exists() and (tmp_path / "risk_coverage.png").exists()
    fitted = json.loads(calibration.read_text())
    p = recipe(isbi_like, work, tmp_path / "r", f"--export_base={tmp_path}/final", f"--calibration={calibration}",
               fold=-1, num_folds=2)
    assert p.returncode == 0, p.stderr[-3000:]
    info = json.loads((tmp_path / "final" / "1" / "assets" / "model_info.json").read_text())
    assert info["calibration"]["weights"] == fitted["weights"]
    assert "expected_error_mm" in info["outputs"] and "radius90_mm" in info["outputs"]

    # A change that needs no training (here: the calibration refitted): the final model is exported
    # again from its own export, as the next version.
    refit = tmp_path / "refit.json"
    refit.write_text(json.dumps({**fitted, "q90": fitted["q90"] * 1.5}))
    p = recipe(isbi_like, work, tmp_path / "r", "--from_export", f"--export_base={tmp_path}/final",
               f"--calibration={refit}", fold=-1, num_folds=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert f"exported: {tmp_path}/final/2" in p.stdout and "nothing trained" in p.stdout
    second = json.loads((tmp_path / "final" / "2" / "assets" / "model_info.json").read_text())
    assert second["calibration"]["q90"] == fitted["q90"] * 1.5 and second["shape_weights"] == info["shape_weights"]
    assert second["global_config"] == info["global_config"]
    p = recipe(isbi_like, work, tmp_path / "r", "--from_export", fold=0, num_folds=2)
    assert p.returncode != 0 and "--from_export is for --fold=-1" in p.stderr

    # An export that predates the recipe's local members (as version 3 of the shipped model does):
    # --from_export trains only the members (here one; the other is reused from the workdir), on
    # all the images, and adds them.
    assert [c["seed"] for c in second["extra_local_configs"]] == [2, 3]
    p = run("-c", _WITHOUT_MEMBERS, f"{tmp_path}/final/2", f"{tmp_path}/final", "3")
    assert p.returncode == 0, p.stderr[-3000:]
    shutil.rmtree(work / "all" / "model" / "local-2")
    p = recipe(isbi_like, work, tmp_path / "r", "--from_export", f"--export_base={tmp_path}/final",
               f"--calibration={refit}", fold=-1, num_folds=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "lacks local member local-2: training it, 2 steps" in p.stdout and "added: 2 local member(s)" in p.stdout
    assert "local-3 already trained" in p.stdout
    fourth = json.loads((tmp_path / "final" / "4" / "assets" / "model_info.json").read_text())
    assert fourth["extra_local_configs"] == second["extra_local_configs"]
    assert fourth["local_config"] == second["local_config"] and fourth["calibration"] == second["calibration"]
    # A member trained otherwise is trained again (here: reused from the run above) and takes its place.
    p = run("-c", _OTHER_MEMBER, f"{tmp_path}/final/4", f"{tmp_path}/other", "1")
    assert p.returncode == 0, p.stderr[-3000:]
    p = recipe(isbi_like, work, tmp_path / "r", "--from_export", f"--export_base={tmp_path}/other",
               f"--calibration={refit}", fold=-1, num_folds=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "local-2 already trained" in p.stdout and "in place of its own: 2 local member(s)" in p.stdout
    other = json.loads((tmp_path / "other" / "2" / "assets" / "model_info.json").read_text())
    assert other["extra_local_configs"] == second["extra_local_configs"]
    # A stage whose settings the recipe changed since is trained again on all the images and replaces
    # the export's; the other stage is kept. (A fresh workdir: the one above trained the stages with
    # 2 steps, and a stage directory is never resumed with other settings.)
    p = recipe(isbi_like, tmp_path / "w3", tmp_path / "r", "--from_export", f"--export_base={tmp_path}/final",
               f"--calibration={refit}", "--global_steps=3", fold=-1, num_folds=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "global stage has other settings than the recipe's (steps: 2 -> 3" in p.stdout
    assert "): training it, 3 steps" in p.stdout and "replaced: global stage)" in p.stdout
    assert "local stage has other settings" not in p.stdout and "local-2" not in p.stdout
    fifth = json.loads((tmp_path / "final" / "5" / "assets" / "model_info.json").read_text())
    assert fifth["global_config"]["steps"] == 3 and fifth["local_config"] == fourth["local_config"]
    assert fifth["extra_local_configs"] == fourth["extra_local_configs"]
    # --local_steps holds for every local net: the first and the member both train again.
    p = recipe(isbi_like, tmp_path / "w3", tmp_path / "r", "--from_export", f"--export_base={tmp_path}/final",
               f"--calibration={refit}", "--global_steps=3", "--local_steps=3", fold=-1, num_folds=2)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "local stage has other settings than the recipe's (steps: 2 -> 3" in p.stdout
    assert "global stage has other settings" not in p.stdout
    assert "holds local members trained otherwise (local-2): training it, 3 steps" in p.stdout
    sixth = json.loads((tmp_path / "final" / "6" / "assets" / "model_info.json").read_text())
    assert sixth["global_config"] == fifth["global_config"] and sixth["local_config"]["steps"] == 3
    assert [(c["seed"], c["steps"]) for c in sixth["extra_local_configs"]] == [(2, 3), (3, 3)]


# Exports argv[1]'s model without its local ensemble members as argv[2]/argv[3].
_WITHOUT_MEMBERS = """
import sys
from lmk_tf.export.reload import rebuild, without_local_members
from lmk_tf.export.savedmodel import export_pipeline
export_pipeline(without_local_members(rebuild(sys.argv[1])), sys.argv[2], version=int(sys.argv[3]))
"""

# Exports argv[1]'s model as argv[2]/argv[3], its local members relabelled as trained with seed 7.
_OTHER_MEMBER = """
import sys
from lmk_tf.export.reload import _INFERENCE, rebuild
from lmk_tf.export.savedmodel import export_pipeline
from lmk_tf.method.graph import GlobalToLocal
m = rebuild(sys.argv[1])
other = GlobalToLocal(m.global_net, m.local_net, m.global_config, m.local_config, m.landmark_names,
                      name="global_to_local", extra_local_nets=m.extra_local_nets,
                      extra_local_configs=[{**c, "seed": 7} for c in m.extra_local_configs],
                      **{k: getattr(m, k) for k in _INFERENCE})
export_pipeline(other, sys.argv[2], version=int(sys.argv[3]))
"""
