"""benchmarks/isbi2015_compose.py: its refusals. The compositions themselves are checked in
tests/pipelines/test_isbi2015.py, on the fold model and ablation member that test trains anyway."""

from tests.conftest import run_in_repo as run


def compose(data, work, *extra):
    return run("benchmarks/isbi2015_compose.py", f"--data={data}", "--spacing=1.0", "--num_folds=2",
               "--folds=0", f"--fold_models={work}/folds", *extra)


def test_refusals_name_what_is_wrong_in_one_line(isbi_like, tmp_path):
    for extra, message in (([], "give --predictions"),
                           ([f"--predictions={tmp_path}/out", "--global_shifts=5"],
                            "--global_shifts must be 0, 1, 2 or 3, got 5"),
                           ([f"--predictions={tmp_path}/out"], f"no exported model in {tmp_path}/folds/fold0")):
        p = compose(isbi_like, tmp_path, *extra)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert p.returncode != 0 and message in lines[-1] and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert not (tmp_path / "out").exists()
