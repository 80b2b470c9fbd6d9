"""lmk_tf.cli: commands start without TensorFlow's native start-up chatter on stderr."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_tensorflow_start_up_and_first_op_write_nothing_to_stderr():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    code = ("from lmk_tf import cli; cli.import_tensorflow_quietly()\n"
            "import tensorflow as tf\n"
            "print(float(tf.constant(1.0) + 1.0))\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == "2.0"
    assert p.stderr == ""


def test_debug_log_level_leaves_the_import_to_the_caller():
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "0"}
    code = "from lmk_tf import cli; cli.import_tensorflow_quietly()\nimport sys\nprint('tensorflow' in sys.modules)"
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0 and p.stdout.strip() == "False", p.stderr


TOY = '''"""lmk-toy: greet someone.

  lmk-toy --name=Ada
"""
from absl import flags

from lmk_tf import cli

flags.DEFINE_string("name", None, "Who to greet.")
flags.DEFINE_integer("times", 2, "How often.")


def main(argv):
    print(" ".join(["hello", flags.FLAGS.name] * flags.FLAGS.times))


if __name__ == "__main__":
    cli.run_app(main, required=["name"])
'''


def toy(tmp_path, *args, **kwargs):
    path = tmp_path / "toy.py"
    path.write_text(TOY)
    env = dict(os.environ, PYTHONPATH=REPO)
    return subprocess.run([sys.executable, str(path), *args], env=env, capture_output=True,
                          text=True, timeout=60, **kwargs)


def test_help_is_the_docstring_and_the_modules_own_flags(tmp_path):
    for spelling in ("--help", "-h", "--helpshort"):
        p = toy(tmp_path, spelling)
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("lmk-toy: greet someone.\n\n  lmk-toy --name=Ada\n\nflags:\n"), p.stdout
        assert "  --name: Who to greet. Required.\n" in p.stdout
        assert "  --times: How often.\n    (default: '2')\n" in p.stdout
        assert "verbosity" not in p.stdout and "helpxml" not in p.stdout
        assert p.stdout.rstrip().endswith("Try --helpfull to get a list of all flags (TensorFlow's and absl's too).")


def test_required_flags_are_still_required_without_help(tmp_path):
    missing = toy(tmp_path)
    assert missing.returncode != 0 and "--name" in missing.stderr
    p = toy(tmp_path, "--name=Ada", "--nohelp")
    assert p.returncode == 0 and p.stdout == "hello Ada hello Ada\n", p.stderr


def test_helpfull_is_absls(tmp_path):
    p = toy(tmp_path, "--helpfull")
    assert "--[no]logtostderr" in p.stdout and "--name: Who to greet. Required." in p.stdout


def test_help_into_a_closed_pipe_ends_quietly(tmp_path):
    path = tmp_path / "toy.py"
    path.write_text(TOY)
    proc = subprocess.Popen([sys.executable, str(path), "--help"], env=dict(os.environ, PYTHONPATH=REPO),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the child writes: `lmk-train --help | head -0`
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and b"Error" not in err, err.decode()
