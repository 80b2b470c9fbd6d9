"""Fixtures the command tests share with the serving tests."""

from tests.serving.conftest import toy_export  # noqa: F401 - a fixture, found by name
