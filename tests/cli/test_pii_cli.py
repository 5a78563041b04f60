"""``luodi pii scan|redact`` over text, JSONL and CSV files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from luodi.cli.pii import app

runner = CliRunner()


def write(tmp_path: Path, name: str, content: str) -> Path:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    return path


def test_scan_counts_entities_in_a_text_file(tmp_path: Path) -> None:
    src = write(tmp_path, "notes.txt", "王磊 13812345678\n邮箱 a@b.cn，再打13812345678\n")
    result = runner.invoke(app, ["scan", str(src), "--jsonl"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [(r["record"], r["entity_type"]) for r in rows] == [
        (1, "PERSON"),
        (1, "PHONE"),
        (2, "EMAIL"),
        (2, "PHONE"),
    ]
    assert "13812345678" not in result.output


def test_redact_jsonl_keeps_structure_and_numbers_tags_file_wide(tmp_path: Path) -> None:
    lines = [
        {"id": 1, "text": "手机13812345678", "meta": {"email": "a@b.cn"}},
        {"id": 2, "text": "还是13812345678，另一个13987654321"},
    ]
    src = write(
        tmp_path, "d.jsonl", "".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines)
    )
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["redact", str(src), "--out", str(out)])
    assert result.exit_code == 0, result.output
    docs = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert docs[0] == {"id": 1, "text": "手机<PHONE_1>", "meta": {"email": "<EMAIL_1>"}}
    assert docs[1] == {"id": 2, "text": "还是<PHONE_1>，另一个<PHONE_2>"}


def test_redact_csv_touches_only_the_named_columns(tmp_path: Path) -> None:
    src = write(tmp_path, "c.csv", "name,phone,memo\n王磊,13812345678,王磊来电\n")
    out = tmp_path / "o.csv"
    result = runner.invoke(
        app, ["redact", str(src), "-o", str(out), "--field", "phone", "--operator", "mask"]
    )
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8") == "name,phone,memo\n王磊,138****5678,王磊来电\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--field", "nope"], "no columns ['nope']"),
        (["--policy", "missing"], "unknown policy 'missing'"),
        (["--format", "xml"], "--format must be"),
    ],
)
def test_bad_options_fail_with_a_clear_message(
    tmp_path: Path, args: list[str], message: str
) -> None:
    src = write(tmp_path, "c.csv", "name\n王磊\n")
    result = runner.invoke(app, ["redact", str(src), *args])
    assert result.exit_code != 0
    assert message in result.output


def test_config_file_custom_rules_apply(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "luodi.yaml",
        "privacy:\n  custom_rules:\n    - name: EMPLOYEE_ID\n      regex: 'EMP-\\d{6}'\n"
        "      score: 0.9\n  policies:\n    default:\n      entities: [EMPLOYEE_ID]\n"
        "      default_operator: redact\n",
    )
    src = write(tmp_path, "t.txt", "工号 EMP-000123 王磊\n")
    result = runner.invoke(app, ["redact", str(src), "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output == "工号  王磊\n"


def test_bad_regex_in_config_exits_2_naming_the_rule(tmp_path: Path) -> None:
    config = write(
        tmp_path,
        "luodi.yaml",
        "privacy:\n  custom_rules:\n    - name: BROKEN\n      regex: '[0-9'\n",
    )
    src = write(tmp_path, "t.txt", "x\n")
    result = runner.invoke(app, ["scan", str(src), "--config", str(config)])
    assert result.exit_code == 2
    assert "BROKEN" in result.output
