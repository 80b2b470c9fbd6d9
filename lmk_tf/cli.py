"""What every console command shares: quiet TensorFlow logs and one-line errors.

Commands are absl apps. A user's mistake (bad file, bad flag value) must end as
one line on stderr naming the problem and exit code 2, never a traceback, so
each entry point runs its `main` through `run_app`.
"""

import os
import sys

# Set before TensorFlow is imported anywhere, so its C++ start-up chatter stays out
# of the output users read. An explicit setting by the user wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging

from lmk_tf.errors import LmkError

EXIT_USER_ERROR = 2


def fail(message: str) -> None:
    """Print one error line for the running command and exit with code 2."""
    prog = os.path.basename(sys.argv[0]) or "lmk"
    print(f"{prog}: error: {message}", file=sys.stderr)
    sys.exit(EXIT_USER_ERROR)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with its C++ start-up lines kept off stderr.

    TensorFlow 2.21 prints "All log messages before absl::InitializeLog()..."
    and "Could not find cuda drivers" from native code while it is imported
    (and "failed call to cuInit" when it first looks for devices),
    whatever TF_CPP_MIN_LOG_LEVEL says, so a user error would no longer be one
    line. Commands that need TensorFlow call this before anything imports it;
    TF_CPP_MIN_LOG_LEVEL=0 keeps the lines for debugging.
    """
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        import tensorflow

        # Device discovery (cuInit on a machine without a GPU) happens at the first op and
        # prints its own error line; do it here, while stderr is still closed.
        tensorflow.config.list_physical_devices()
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def quiet_logs() -> None:
    """Warnings and errors only, unless the user asked for --verbosity.

    TensorFlow's SavedModel writer logs a line per shard at INFO level, which
    buries the progress lines people actually read.
    """
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def run_app(main) -> None:
    """Run an absl `main(argv)`, turning package errors into one stderr line."""

    def guarded(argv):
        quiet_logs()
        try:
            return main(argv)
        except LmkError as e:
            fail(str(e))
        except FileNotFoundError as e:
            fail(f"{e.filename}: no such file or directory")
        except PermissionError as e:
            fail(f"{e.filename}: permission denied")
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    app.run(guarded)
