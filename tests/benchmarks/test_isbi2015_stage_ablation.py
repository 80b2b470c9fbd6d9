"""benchmarks/isbi2015_stage_ablation.py: its refusals. The composition itself (a stage retrained and
composed with a fold model's other stage) is checked in tests/pipelines/test_isbi2015.py, on the fold
model that test trains anyway."""

from tests.conftest import run_in_repo as run


def ablation(data, work, *extra):
    return run("benchmarks/isbi2015_stage_ablation.py", f"--data={data}", "--spacing=1.0", "--num_folds=2",
               "--folds=0", f"--fold_models={work}/folds", f"--workdir={work}/ablation", *extra)


def test_a_fold_with_no_exported_model_is_refused_naming_it(isbi_like, tmp_path):
    p = ablation(isbi_like, tmp_path, "--stage=local", "--name=deep", "--set=steps=2")
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode != 0 and "no exported model in" in lines[-1] and "train fold 0 first" in lines[-1]
    assert "Traceback" not in p.stderr


def test_bad_settings_are_refused_in_one_line_before_anything_trains(isbi_like, tmp_path):
    for bad, message in ((["--set=stepz=3"], "give key=value with a key of"),
                         (["--set=steps=three"], "the value is not JSON"),
                         (['--set=net={"blocks": 2}'], "unknown fields ['blocks']"),
                         (["--set=spacing=-1"], "spacing"),
                         ([], "give --name")):
        name = [] if not bad else ["--name=bad"]
        p = ablation(isbi_like, tmp_path, "--stage=local", *name, *bad)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert p.returncode != 0 and message in lines[-1] and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "ablation").exists()
