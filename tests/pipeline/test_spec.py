"""Pipeline files: validated by pydantic, a malformed one is one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from luodi.cli.pipeline import app
from luodi.errors import ConfigError
from luodi.pipeline import load_pipeline
from luodi.pipeline.spec import DedupNearSpec, PIISpec

runner = CliRunner()


def _load(tmp_path: Path, text: str) -> object:
    path = tmp_path / "p.yaml"
    path.write_text(text, encoding="utf-8")
    return load_pipeline(path)


def test_valid_pipeline_loads_with_paths_relative_to_the_file(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        "input: in.jsonl\noutput: out/kept.jsonl\nstages:\n"
        "  - stage: dedup_near\n    threshold: 0.7\n  - stage: pii\n    action: pseudonymize\n",
    )
    assert spec.input == tmp_path / "in.jsonl"  # type: ignore[attr-defined]
    near, pii = spec.stages  # type: ignore[attr-defined]
    assert isinstance(near, DedupNearSpec) and near.threshold == 0.7
    assert isinstance(pii, PIISpec) and pii.action == "pseudonymize"


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("  - stage: dedup_near\n    threshold: 1.5\n", "stages[0].threshold"),
        ("  - stage: pii\n    action: shred\n", "stages[0].action"),
        ("  - stage: pii\n", "stages[0].action"),
        ("  - stage: normalise\n", "stages[0]: unknown stage"),
        ("  - threshold: 0.5\n", "stages[0]: each stage needs a 'stage' key"),
        ("  - stage: quality\n    min_char: 3\n", "stages[0].min_char"),
    ],
)
def test_malformed_stage_names_the_key(tmp_path: Path, body: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        _load(tmp_path, "input: a.jsonl\noutput: b.jsonl\nstages:\n" + body)
    assert key in err.value.message
    assert "\n" not in err.value.message


def test_missing_top_level_key_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="invalid pipeline: output"):
        _load(tmp_path, "input: a.jsonl\nstages:\n  - stage: normalize\n")


def test_cli_prints_one_line_and_exits_non_zero(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(
        "input: a.jsonl\noutput: b.jsonl\nstages:\n  - stage: dedup_near\n    num_perm: 2\n"
    )
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: invalid pipeline: stages[0].num_perm")


def test_cli_reports_broken_yaml_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("input: a.jsonl\nstages: [\n  - stage\n")
    result = runner.invoke(app, ["run", str(path)])
    assert result.exit_code == 2
    assert "invalid pipeline YAML" in result.output and "line" in result.output


def test_stage_shorthands_name_the_same_stages(tmp_path: Path) -> None:
    spec = _load(
        tmp_path,
        "input: a.jsonl\noutput: b.jsonl\nstages:\n  - normalize\n"
        "  - pii: {action: drop}\n  - name: dedup_near\n    threshold: 0.6\n"
        "  - dedup_exact:\n",
    )
    stages = spec.stages  # type: ignore[attr-defined]
    assert [s.stage for s in stages] == ["normalize", "pii", "dedup_near", "dedup_exact"]
    assert stages[1].action == "drop" and stages[2].threshold == 0.6


def test_shorthand_errors_still_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"stages\[0\]\.action"):
        _load(tmp_path, "input: a\noutput: b\nstages:\n  - pii: {action: burn}\n")
