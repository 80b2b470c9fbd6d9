"""What every landmark file reader and writer shares: text in and out, numbers, errors.

Errors name the file and, where there is one, the line or field.
"""

from __future__ import annotations

import json
import math
import os

from lmk_tf.errors import ConfigError, LandmarkFileError
from lmk_tf.io.landmark_set import Landmarks


def fail(path, where: str, message: str) -> LandmarkFileError:
    return LandmarkFileError(f"{path}: {where}: {message}" if where else f"{path}: {message}")


def read_text(path) -> str:
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            return f.read()
    except FileNotFoundError:
        raise LandmarkFileError(f"{path}: no such file or directory") from None
    except IsADirectoryError:
        raise LandmarkFileError(f"{path}: is a directory, not a landmark file") from None
    except PermissionError:
        raise LandmarkFileError(f"{path}: permission denied") from None
    except UnicodeDecodeError as e:
        raise LandmarkFileError(f"{path}: not a text file ({e.reason} at byte {e.start})") from None


def write_text(path, text: str) -> None:
    path = os.fspath(path)
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as e:
        raise LandmarkFileError(f"{path}: cannot write ({e.strerror or e})") from None


def number(text: str, path, where: str) -> float:
    """A float from a cell; empty or 'nan' means missing."""
    text = text.strip()
    if text == "" or text.lower() == "nan":
        return math.nan
    try:
        value = float(text)
    except ValueError:
        raise fail(path, where, f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise fail(path, where, f"expected a finite number, got {text!r}")
    return value


def num_str(value: float) -> str:
    """Shortest text that reads back as exactly the same float; '' when missing."""
    return "" if not math.isfinite(value) else repr(float(value))


def require_space(landmarks: Landmarks, space: str, fmt: str, path) -> None:
    if landmarks.space != space:
        hint = "to_world(image)" if space == "world" else "to_index(image)"
        raise ConfigError(
            f"{path}: {fmt} files hold {space}-space landmarks, got {landmarks.space!r} space; "
            f"convert with Landmarks.{hint} first"
        )


def load_json(path):
    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise fail(path, f"line {e.lineno}", f"invalid JSON ({e.msg})") from None

