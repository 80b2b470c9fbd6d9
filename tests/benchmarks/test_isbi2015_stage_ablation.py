"""benchmarks/isbi2015_stage_ablation.py: one stage retrained, composed with the fold model's other stage."""

import json

import pytest

from tests.conftest import run_in_repo as run


def ablation(data, work, *extra):
    return run("benchmarks/isbi2015_stage_ablation.py", f"--data={data}", "--spacing=1.0", "--num_folds=2",
               "--folds=0", f"--fold_models={work}/folds", f"--workdir={work}/ablation", *extra)


@pytest.mark.slow
def test_a_local_variant_is_composed_with_the_fold_models_global_stage_and_predicts_its_held_out_images(
        isbi_like, tmp_path):
    work = tmp_path / "work"
    p = ablation(isbi_like, work, "--stage=local", "--name=deep", "--set=steps=2")
    assert p.returncode != 0 and "no exported model in" in p.stderr and "train fold 0 first" in p.stderr

    p = run("-m", "pipelines.isbi2015", f"--data={isbi_like}", "--fold=0", "--num_folds=2", "--spacing=1.0",
            "--global_steps=2", "--local_steps=2", f"--workdir={work}/recipe", f"--report={work}/report",
            f"--fold_models={work}/folds", f"--predictions={work}/kfold")
    assert p.returncode == 0, p.stderr[-3000:]

    # A nested setting changes only the fields named; the value of --set is JSON and may hold commas.
    settings = ["--set=steps=3", "--set=steps_per_epoch=3", '--set=net={"blocks_per_stage": 2}',
                "--set=zoom=[0.9,1.1]"]
    p = ablation(isbi_like, work, "--stage=local", "--name=deep", *settings)
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

    p = ablation(isbi_like, work, "--stage=local", "--name=deep", *settings)
    assert p.returncode == 0 and "exists, skipped" in p.stdout and "training" not in p.stdout

    for bad, message in ((["--set=stepz=3"], "give key=value with a key of"),
                         (["--set=steps=three"], "the value is not JSON"),
                         (['--set=net={"blocks": 2}'], "unknown fields ['blocks']"),
                         (["--set=spacing=-1"], "spacing")):
        p = ablation(isbi_like, work, "--stage=local", "--name=bad", *bad)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert p.returncode != 0 and message in lines[-1] and "Traceback" not in p.stderr, p.stderr[-2000:]
