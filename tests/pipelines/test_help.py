"""`lmk-<command> --help`: what the command does, an example, and its own flags only.

Every command in setup.py's COMMANDS runs as a real subprocess twice: as
`python -m pipelines.<name> --help`, and as its console script runs it (the
entry point called with argv[0] = the command name) with `-h`. What a command
owns is read from its source: the flags it defines, plus pipelines/source_flags.py's
when it imports that module.
"""

import ast
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _literal(path, name):
    """The literal assigned to `name` at the top of the Python file `path`."""
    with open(os.path.join(REPO, path)) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{path}: no top-level {name} = <literal>")


COMMANDS = _literal("setup.py", "COMMANDS")
# Flags of absl, its logging and TensorFlow: in --helpfull, never in --help.
FOREIGN = ("tt_check_filter", "only_check_args", "pdb", "verbosity", "logtostderr", "[no]helpfull",
           "run_with_profiling")

# The console script's way in: load the entry point and call it, argv[0] the command's
# name; at exit, say whether TensorFlow got imported.
CONSOLE_SCRIPT = """
import atexit, importlib, sys
atexit.register(lambda: print("TensorFlow was imported", file=sys.stderr)
                if "tensorflow" in sys.modules else None)
name, target = sys.argv[1], sys.argv[2]
module, function = target.split(":")
sys.argv[:3] = [name]
getattr(importlib.import_module(module), function)()
"""


def _source(name):
    module = COMMANDS[name].split(":")[0]
    path = os.path.join(REPO, *module.split(".")) + ".py"
    with open(path) as f:
        return f.read()


def _defined_flags(text):
    return re.findall(r"DEFINE_\w+\(\s*\"(\w+)\"", text)


def own_flags(name):
    text = _source(name)
    flags = _defined_flags(text)
    # Flags of the shared modules a command adopts count as its own.
    for shared in re.findall(r"^flags\.adopt_module_key_flags\((\w+)\)", text, re.M):
        with open(os.path.join(REPO, "pipelines", f"{shared}.py")) as f:
            flags += _defined_flags(f.read())
    return flags


def description(name):
    return ast.get_docstring(ast.parse(_source(name))).splitlines()[0]


def flag_block(help_text, flag):
    """The lines --help shows for one flag."""
    match = re.search(rf"^  (?:-\w,)?--(?:\[no\])?{flag}:.*(?:\n    .*)*", help_text, re.M)
    assert match, f"--{flag} not in:\n{help_text}"
    return match.group(0)


def _run(args):
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def helps():
    """{(command, way): CompletedProcess}, run in parallel."""
    jobs = {}
    for name, target in COMMANDS.items():
        module = target.split(":")[0]
        jobs[name, "python -m"] = [sys.executable, "-m", module, "--help"]
        jobs[name, "console script"] = [sys.executable, "-c", CONSOLE_SCRIPT, name, target, "-h"]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(zip(jobs, pool.map(_run, jobs.values())))
    return results


@pytest.mark.parametrize("way", ["python -m", "console script"])
@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_describes_the_command_and_lists_its_own_flags(helps, name, way):
    p = helps[name, way]
    assert p.returncode == 0, p.stdout + p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == description(name) and lines[0].startswith(f"{name}: "), lines[:3]
    assert any(line.startswith(f"  {name} ") for line in lines), f"no usage example:\n{p.stdout}"
    listed = re.findall(r"^\s+(?:-\w,)?--(?:\[no\])?(\w+):", p.stdout, re.M)
    assert sorted(listed) == sorted(own_flags(name)), p.stdout
    for foreign in FOREIGN:
        assert foreign not in p.stdout, f"{foreign} in {name} --help"
    assert "--helpfull" in lines[-1]


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help_needs_no_tensorflow(helps, name):
    p = helps[name, "console script"]
    assert "TensorFlow was imported" not in p.stderr, f"{name} --help imported TensorFlow"


def test_help_shows_defaults_and_what_is_required(helps):
    train = helps["lmk-train", "python -m"].stdout
    assert flag_block(train, "stage") == "  --stage: <global|local>: Which stage to train. Required."
    strategy = flag_block(train, "strategy")
    assert "<default|mirrored|multi_worker>" in strategy and "(default: 'default')" in strategy
    assert "Required" not in strategy
    limit = _literal("lmk_tf/export/contract.py", "MAX_REQUEST_MB")
    for name, flag in (("lmk-serve", "max_request_mb"), ("lmk-client", "max_message_mb")):
        assert f"(default: '{limit}')" in flag_block(helps[name, "python -m"].stdout, flag)


def test_train_strategies_are_the_trainers():
    # train.py spells the strategies out so that --help needs no TensorFlow.
    assert _literal("pipelines/train.py", "STRATEGIES") == _literal(
        "lmk_tf/training/distribute.py", "STRATEGIES")


def test_helpfull_still_lists_every_flag():
    p = _run([sys.executable, "-m", "pipelines.predict", "--helpfull"])
    assert "--model:" in p.stdout and "--[no]logtostderr" in p.stdout and "--[no]helpfull" in p.stdout
