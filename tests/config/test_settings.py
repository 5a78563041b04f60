"""Settings: YAML file, LUODI_* variables, clear errors, and a reference that matches."""

from __future__ import annotations

from pathlib import Path

import pytest

from luodi.config import load_settings
from luodi.config.reference import render_reference
from luodi.errors import ConfigError

REFERENCE = Path(__file__).parents[2] / "docs" / "configuration.md"


def test_environment_overrides_yaml_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "luodi.yaml"
    config.write_text("server:\n  port: 9100\nengine:\n  n_ctx: 4096\n")
    monkeypatch.setenv("LUODI_ENGINE__N_CTX", "8192")
    settings = load_settings(config)
    assert settings.server.port == 9100
    assert settings.engine.n_ctx == 8192


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"luodi\.yaml"):
        load_settings(tmp_path / "luodi.yaml")


@pytest.mark.parametrize(
    ("yaml", "fragment"),
    [
        ("engine:\n  n_ctx: 10\n", "engine.n_ctx"),
        ("engine:\n  n_ctx: 1024\n  max_model_len: 4096\n", "max_model_len"),
        ("nonsense: 1\n", "nonsense"),
    ],
)
def test_bad_settings_name_the_field(tmp_path: Path, yaml: str, fragment: str) -> None:
    config = tmp_path / "luodi.yaml"
    config.write_text(yaml)
    with pytest.raises(ConfigError, match=fragment):
        load_settings(config)


def test_configuration_reference_is_up_to_date() -> None:
    assert REFERENCE.read_text() == render_reference() + "\n", (
        "docs/configuration.md is stale: python -m luodi.config.reference > docs/configuration.md"
    )


def test_every_knob_is_documented() -> None:
    undocumented = [
        line.split("|")[1].strip()
        for line in render_reference().splitlines()
        if line.startswith("| `") and line.rstrip().endswith("|  |")
    ]
    assert not undocumented, undocumented
