"""TF Serving's directory layout, as the export writes it and every server and command reads it:
`<base>/<integer version>/` holding saved_model.pb (written last, so its presence means complete)."""

import os

from lmk_tf.errors import ModelError


def is_complete_version_dir(path: str) -> bool:
    """A version directory worth trying: saved_model.pb is there (written last by exporters)."""
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def list_versions(base_path: str) -> dict[int, str]:
    """Integer-named subdirectories holding saved_model.pb: version -> path."""
    try:
        entries = os.listdir(base_path)
    except OSError:
        return {}
    # TF Serving ignores anything not a plain non-negative integer (e.g. '1.tmp').
    paths = {int(e): os.path.join(base_path, e) for e in entries if e.isdigit()}
    return {v: p for v, p in paths.items() if is_complete_version_dir(p)}


def resolve_model_dir(path: str) -> tuple[str, int]:
    """A version dir, or a base dir (-> its highest version): (dir, version)."""
    if not os.path.isdir(path):
        raise ModelError(f"{path}: no such model directory")
    if is_complete_version_dir(path):
        base = os.path.basename(os.path.normpath(path))
        return path, int(base) if base.isdigit() else 0
    versions = list_versions(path)
    if not versions:
        raise ModelError(f"{path}: neither a SavedModel (no saved_model.pb) nor a base directory "
                         "with integer version subdirectories")
    return versions[max(versions)], max(versions)
