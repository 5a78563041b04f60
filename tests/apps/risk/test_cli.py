"""``luodi risk train|score|eval|explain`` on files, end to end (tabular learners)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from luodi.cli import risk as risk_cli
from tests.apps.risk.cases import card_testing_case, labelled_set

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with its own SQLite audit chain and risk data dir."""
    db_url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("LUODI_STORAGE__DATABASE_URL", db_url)
    monkeypatch.setenv("LUODI_RISK__DATA_DIR", str(tmp_path / "risk"))
    path = tmp_path / "luodi.yaml"
    path.write_text(f"storage:\n  database_url: {db_url}\n")
    return path


def _csv(path: Path, rows: list[dict[str, object]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["id", "account_age_days", "segment", "events", "is_fraud"])
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {
                    "id": r["id"],
                    **r["features"],
                    "events": json.dumps(r["events"]),  # type: ignore[dict-item]
                    "is_fraud": r["label"],
                }
            )
    return path


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(risk_cli.app, [*args])  # type: ignore[arg-type]
    return result.exit_code, result.output


def test_train_score_explain_and_eval_from_files(config: Path, tmp_path: Path) -> None:
    cfg = ("--config", str(config))
    data = _csv(tmp_path / "labelled.csv", labelled_set(30))
    code, out = invoke(
        "train",
        "--data",
        str(data),
        "--label",
        "is_fraud",
        "--learner",
        "logreg,gbdt",
        "--model",
        "fraud",
        "--json",
        *cfg,
    )
    assert code == 0, out
    assert set(json.loads(out)["learners"]) == {"logreg", "gbdt"}

    cases = tmp_path / "cases.json"
    cases.write_text(json.dumps([card_testing_case()]))
    code, out = invoke("score", "--data", str(cases), "--model", "fraud", "--json", *cfg)
    assert code == 0, out
    [answer] = json.loads(out)
    assert answer["learner"] == "logreg" and answer["decision_id"].startswith("dec-")

    code, out = invoke("explain", answer["decision_id"], "--json", *cfg)
    assert code == 0, out
    replay = json.loads(out)
    assert replay["matches"] is True
    assert replay["audit"]["decision"] == answer["decision"]
    assert replay["audit"]["inputs_sha256"] == replay["inputs_sha256"]

    result = tmp_path / "eval.json"
    code, out = invoke(
        "eval",
        "--data",
        str(data),
        "--label",
        "is_fraud",
        "--model",
        "fraud",
        "--out",
        str(result),
        *cfg,
    )
    assert code == 0, out
    report = json.loads(result.read_text())
    assert set(report["learners"]) == {"logreg", "gbdt"}
    assert {"auc", "pr_auc", "recall_at_review", "brier", "latency_ms_per_case"} <= set(
        report["learners"]["gbdt"]
    )
    assert report["n"] == 30 and report["positives"] == 15 and "value" in report


def test_training_on_one_class_exits_with_one_line(config: Path, tmp_path: Path) -> None:
    fraud = [r for r in labelled_set(10) if r["label"] == 1]
    data = _csv(tmp_path / "fraud.csv", fraud)
    code, out = invoke("train", "--data", str(data), "--label", "is_fraud", "--config", str(config))
    assert code == 1
    assert out.strip().startswith("error: all 5 labelled cases have label 1")


def test_a_missing_label_column_is_named(config: Path, tmp_path: Path) -> None:
    data = _csv(tmp_path / "l.csv", labelled_set(4))
    code, out = invoke(
        "train", "--data", str(data), "--label", "fraud_flag", "--config", str(config)
    )
    assert code == 1 and "no 'fraud_flag' column" in out


def test_the_incontext_learner_needs_a_server(config: Path, tmp_path: Path) -> None:
    data = _csv(tmp_path / "l.csv", labelled_set(4))
    code, out = invoke(
        "train",
        "--data",
        str(data),
        "--label",
        "is_fraud",
        "--learner",
        "incontext",
        "--config",
        str(config),
    )
    assert code == 2 and "--server" in out
