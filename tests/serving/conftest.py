"""Fixtures for the serving tests: toy SavedModels built once per session."""

import os
import shutil
import socket

import pytest

from tests.serving.toy_model import export_toy_model


@pytest.fixture(scope="session")
def toy_export(tmp_path_factory):
    """Pristine toy SavedModel version directories: {'2d': dir, '3d': dir}."""
    root = tmp_path_factory.mktemp("toy_export")
    return {
        "2d": export_toy_model(str(root / "toy2d" / "1"), ndim=2),
        "3d": export_toy_model(str(root / "toy3d" / "1"), ndim=3),
    }


def install_version(source: str, base: str, version: int) -> str:
    """Copy a version dir into base/<version> the safe way: copy aside, then rename."""
    os.makedirs(base, exist_ok=True)
    staging = os.path.join(base, f".{version}.partial")
    shutil.copytree(source, staging)
    target = os.path.join(base, str(version))
    os.rename(staging, target)
    return target


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
