"""What lmk-batch takes from its command line: the files to read, and Beam's options.

lmk-batch defines a few absl flags; everything else on its command line
(--runner, --direct_num_workers, --project, ...) goes to Beam unchanged, so
any runner's own options work without lmk-batch knowing them. Free of Beam
and TensorFlow, so a mistake is named at once.
"""

from __future__ import annotations

import glob
import os

from lmk_tf.errors import ConfigError


def split_beam_args(argv: list[str], parse_known) -> tuple[list[str], list[str]]:
    """(argv for absl, Beam's arguments), each in the order given.

    `parse_known(argv)` parses the flags lmk-batch defines and returns the rest
    with argv[0] in front, as absl's `FLAGS(argv, known_only=True)` does. When
    it fails (a bad value), everything stays with absl, which then names it.
    """
    try:
        rest = parse_known(list(argv))[1:]
    except Exception:
        return list(argv), []
    ours, beams, j = [argv[0]], [], 0
    for arg in argv[1:]:
        if j < len(rest) and arg == rest[j]:
            beams.append(arg)
            j += 1
        else:
            ours.append(arg)
    return ours, beams


def stray_argument(args: list[str]) -> str | None:
    """The first argument that is neither a flag nor the value of the flag before it."""
    for i, arg in enumerate(args):
        if arg.startswith("-"):
            continue
        previous = args[i - 1] if i else ""
        if not (previous.startswith("--") and "=" not in previous):
            return arg
    return None


def input_paths(pattern: str | None = None, manifest: str | None = None) -> list[str]:
    """The files (or DICOM series folders) a job reads: a glob's matches or a manifest's lines.

    Manifest lines are paths, one a line; blank lines and lines starting with
    '#' are skipped, relative paths are relative to the manifest's folder.
    """
    if bool(pattern) == bool(manifest):
        raise ConfigError("give exactly one of --input (a glob) and --manifest (a file of paths)")
    if pattern:
        paths = sorted(glob.glob(os.path.expanduser(pattern), recursive=True))
        if not paths:
            raise ConfigError(f"--input={pattern}: no files match")
        return paths
    try:
        with open(manifest, encoding="utf-8") as f:
            lines = [line.strip() for line in f]
    except FileNotFoundError:
        raise ConfigError(f"--manifest={manifest}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--manifest={manifest}: not a text file of paths") from None
    base = os.path.dirname(os.path.abspath(manifest))
    paths = [os.path.normpath(os.path.join(base, line)) for line in lines if line and not line.startswith("#")]
    if not paths:
        raise ConfigError(f"--manifest={manifest}: lists no paths")
    return paths
