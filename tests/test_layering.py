"""The dependency direction of docs/architecture.md, checked on every import in luodi/.

Each top-level part of ``luodi`` (a package, or a module such as ``errors.py``) may
import only the parts its row of ``ALLOWED`` names. Every ``import`` counts: at the top
of a module, inside a function, under ``TYPE_CHECKING``. A new part fails
``test_every_part_of_luodi_has_a_row`` until it is placed here and in the document.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "luodi"
DOC = ROOT / "docs" / "architecture.md"

_BASE = frozenset({"config", "errors"})

ALLOWED: dict[str, frozenset[str]] = {
    # The foundation: the exception tree, the settings, the embedding contract.
    "errors": frozenset(),
    "config": frozenset({"errors"}),
    "embedding": frozenset(),
    "storage": _BASE,
    # Libraries: they know nothing of HTTP, engines or each other.
    "chat": _BASE,
    "privacy": _BASE,
    "knowledge": _BASE | {"embedding"},
    "pipeline": _BASE,
    # GGUF files themselves: inspection, memory arithmetic, quantisation, fine-tuning.
    "models": _BASE,
    "evaluation": _BASE | {"models"},
    # The engine runs models; it renders no prompts (chat) and knows no tenants (security).
    "engine": _BASE | {"embedding", "models"},
    "security": _BASE | {"storage"},
    # The server assembles everything below it; the CLI sits on top.
    # create_app mounts the apps' routers: the one import from api into apps.
    "api": _BASE
    | {
        "storage",
        "embedding",
        "chat",
        "engine",
        "privacy",
        "knowledge",
        "security",
        "apps",
        "console",
    },
    # Business apps (support, risk) run on the gateway pipeline like any route.
    "apps": _BASE
    | {"storage", "embedding", "chat", "engine", "privacy", "knowledge", "security", "api"},
    # The web console renders pages over the gateway's admin logic and the API.
    "console": _BASE | {"storage", "security", "api"},
    "cli": _BASE
    | {
        "storage",
        "embedding",
        "chat",
        "engine",
        "privacy",
        "knowledge",
        "pipeline",
        "models",
        "evaluation",
        "security",
        "api",
        "apps",
    },
}
"""Part of luodi → the other parts it may import."""


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    source: str
    target: str
    imported: str

    def __str__(self) -> str:
        return (
            f"{self.path.relative_to(ROOT)}:{self.line}: {self.source} may not import "
            f"{self.imported} ({self.target} is not in its row of ALLOWED)"
        )


def part_of(module: str) -> str | None:
    """``luodi.engine.types`` → ``engine``; None for modules outside luodi."""
    names = module.split(".")
    if names[0] != "luodi" or len(names) < 2:
        return None
    return names[1]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``tree``."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if target == "luodi":  # from luodi import errors: the names are the parts
                for alias in node.names:
                    yield node.lineno, f"luodi.{alias.name}"
            else:
                yield node.lineno, target


def violations(root: Path, allowed: dict[str, frozenset[str]]) -> list[Violation]:
    """Every import under ``root`` (a copy of the luodi package) that ``allowed`` forbids."""
    found: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        source = part_of(module)
        if source is None:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, imported in imported_modules(tree, module, path.name == "__init__.py"):
            target = part_of(imported)
            if target is None or target == source:
                continue
            if target not in allowed.get(source, frozenset()):
                found.append(Violation(path, line, source, target, imported))
    return found


def parts(root: Path) -> set[str]:
    """The top-level parts of the package: sub-packages and modules."""
    found = {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    found |= {p.stem for p in root.glob("*.py") if p.name != "__init__.py"}
    return found


def test_every_part_of_luodi_has_a_row() -> None:
    missing = parts(PACKAGE) - set(ALLOWED)
    assert not missing, f"place {sorted(missing)} in ALLOWED and in docs/architecture.md"


def test_no_part_of_luodi_imports_upward() -> None:
    found = violations(PACKAGE, ALLOWED)
    assert not found, "\n".join(str(v) for v in found)


def test_the_table_in_docs_architecture_matches_allowed() -> None:
    section = DOC.read_text(encoding="utf-8").split("## Dependency direction", 1)[1]
    rows = re.findall(r"^\| `(\w+)` \| (.*?) \|$", section, re.MULTILINE)
    documented = {name: frozenset(re.findall(r"`(\w+)`", targets)) for name, targets in rows}
    assert documented == ALLOWED


@pytest.mark.parametrize(
    ("path", "code", "offender"),
    [
        ("knowledge/retrieval.py", "from luodi.engine.types import Usage\n", "luodi.engine.types"),
        ("engine/llamacpp/model.py", "from luodi.chat import ChatTemplate\n", "luodi.chat"),
        ("engine/router.py", "from ..api import app\n", "luodi.api"),
        ("privacy/stage.py", "def f(): import luodi.security.keys\n", "luodi.security.keys"),
        ("chat/request.py", "from luodi import engine\n", "luodi.engine"),
    ],
)
def test_an_upward_import_is_reported(tmp_path: Path, path: str, code: str, offender: str) -> None:
    root = tmp_path / "luodi"
    (root / path).parent.mkdir(parents=True)
    for folder in (root / path).parents:
        if folder == tmp_path:
            break
        (folder / "__init__.py").touch()
    (root / path).write_text(f"import os\n{code}", encoding="utf-8")
    [found] = violations(root, ALLOWED)
    assert (found.imported, found.line) == (offender, 2)


def test_an_allowed_import_is_not_reported(tmp_path: Path) -> None:
    root = tmp_path / "luodi"
    (root / "api").mkdir(parents=True)
    (root / "__init__.py").touch()
    (root / "api" / "__init__.py").touch()
    (root / "api" / "app.py").write_text(
        "from luodi.engine import types\nfrom . import state\nfrom luodi import errors\n",
        encoding="utf-8",
    )
    assert violations(root, ALLOWED) == []
