"""What every console command shares: its --help, quiet TensorFlow logs, one-line errors.

Commands are absl apps. A user's mistake (bad file, bad flag value) must end as
one line on stderr naming the problem and exit code 2, never a traceback, so
each entry point runs its `main` through `run_app`. `run_app` also gives the
command its --help: the command module's docstring and its own flags, where
absl's would list only the flags of `__main__` (nothing, for a console script)
and point at --helpfull's hundreds of TensorFlow flags.
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


REQUIRED = " Required."


def command_help(module) -> str:
    """--help of the command `module`: its docstring, then its own flags.

    A command's own flags are absl's key flags of its module: those it defines
    and those it adopts (`flags.adopt_module_key_flags(source_flags)`).
    """
    doc = (module.__doc__ or "").strip("\n")
    # module_help starts with a "<module name>:" line (a file path under
    # `python -m`), which says nothing to the user.
    own = flags.FLAGS.module_help(module).lstrip("\n").partition("\n")[2]
    return (f"{doc}\n\nflags:\n{own}\n\n"
            "Try --helpfull to get a list of all flags (TensorFlow's and absl's too).\n")


class _HelpFlag(flags.BooleanFlag):
    """--help/-h (and absl's alias --helpshort): print `command_help` and exit 0."""

    def __init__(self, name, short_name, module):
        super().__init__(name, False, "show this command's description and its own flags",
                         short_name=short_name, allow_hide_cpp=True)
        self.module = module

    def parse(self, argument):
        super().parse(argument)
        if not self.value:
            return
        try:
            sys.stdout.write(command_help(self.module))
            sys.stdout.flush()
        except BrokenPipeError:
            # `lmk-train --help | head`: no traceback, and none at exit when
            # Python flushes stdout again.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)


def _define_help_flags(module) -> None:
    """absl's help flags, with --help/-h/--helpshort describing `module`."""
    app.define_help_flags()  # idempotent; --helpfull and --helpxml stay absl's
    for name in ("help", "?", "helpshort"):
        if name in flags.FLAGS and not isinstance(flags.FLAGS[name], _HelpFlag):
            delattr(flags.FLAGS, name)
    if "help" not in flags.FLAGS:
        flags.DEFINE_flag(_HelpFlag("help", "h", module))
        flags.DEFINE_flag(_HelpFlag("helpshort", None, module))


def run_app(main, *, required=()) -> None:
    """Run an absl `main(argv)` as a command.

    Args:
      main: the command's `main(argv)`. Its module is the command: --help
        prints that module's docstring (first line: what the command does,
        then usage examples) and the module's own flags.
      required: names of flags that must be given; --help says so and still
        works without them.

    Package errors (LmkError, missing or unreadable files) end as one stderr
    line and exit code 2.
    """
    module = sys.modules[main.__module__]
    for name in required:
        flags.mark_flag_as_required(name)
        flag = flags.FLAGS[name]
        if not flag.help.endswith(REQUIRED):
            flag.help += REQUIRED
    _define_help_flags(module)

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
