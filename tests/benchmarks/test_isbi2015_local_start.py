"""benchmarks/isbi2015_local_start.py: its refusals. Its figures on a real fold model are checked in
tests/pipelines/test_isbi2015.py, on the fold model that test trains anyway."""

from tests.conftest import run_in_repo as run


def local_start(data, models, *extra):
    return run("benchmarks/isbi2015_local_start.py", f"--data={data}", "--spacing=1.0", "--num_folds=2",
               "--folds=0", f"--models={models}", *extra)


def test_a_fold_with_no_model_is_refused_naming_it(isbi_like, tmp_path):
    p = local_start(isbi_like, tmp_path)
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert p.returncode != 0 and f"no model for fold 0 in {tmp_path}/fold0" in lines[-1]
    assert "Traceback" not in p.stderr


def test_bad_offsets_are_refused_in_one_line(isbi_like, tmp_path):
    for bad, message in (("--offsets_mm=one", "give lengths in mm"), ("--offsets_mm=0,2", "must be > 0 mm")):
        p = local_start(isbi_like, tmp_path, bad)
        lines = [line for line in p.stderr.splitlines() if line.strip()]
        assert p.returncode != 0 and message in lines[-1] and "Traceback" not in p.stderr, p.stderr[-2000:]
