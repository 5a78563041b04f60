"""Markers of the deployment tests."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: builds a fresh virtual environment or starts servers; minutes, not seconds "
        "(runs in the normal suite and CI; deselect with -m 'not slow')",
    )
