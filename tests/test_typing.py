"""mypy --strict on the core packages, so a type error fails the suite like any other bug.

Which packages, and the strict settings, are ``[tool.mypy]`` in pyproject.toml. mypy keeps
its cache in ``.mypy_cache`` (git-ignored): the first run reads numpy, SQLAlchemy and
pydantic once (about 40 s of CPU), later runs take a few seconds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_core_packages_pass_mypy_strict() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--no-error-summary"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert done.returncode == 0, done.stdout + done.stderr
