"""Shared test setup: the ``root`` marker policy and the ``netlab`` import path."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:  # so tests can `from netlab import NetLab`
    sys.path.insert(0, str(TESTS_DIR))

from netlab import require_root  # noqa: E402


def pytest_runtest_setup(item: pytest.Item) -> None:
    # Tests marked `root` skip with the reason when they cannot run here, and fail
    # instead of skipping under CI=true (see netlab.require_root).
    if item.get_closest_marker("root") is not None:
        require_root()
