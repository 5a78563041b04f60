"""The local runner: contract files, cross-shard dedup on a pool, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from luodi.cli.pipeline import app
from luodi.pipeline import LocalRunner, StageTotals, load_pipeline
from tests.pipeline.conftest import EN, ID_NUMBER, ZH, read_jsonl, write_jsonl, write_pipeline

STAGES: list[dict[str, Any]] = [
    {"stage": "normalize"},
    {"stage": "dedup_exact"},
    {"stage": "dedup_near", "threshold": 0.6},
    {"stage": "quality"},
]


def corpus(n: int) -> list[dict[str, Any]]:
    """n records: distinct sentences, with exact and edited copies far apart (other shards)."""
    out: list[dict[str, Any]] = []
    for i in range(n):
        if i % 10 == 7:
            text = out[i - 7]["text"]  # exact copy, seven records back
        elif i % 10 == 9:
            text = out[i - 9]["text"].replace("number", "count")  # a near copy
        elif i % 2:
            text = f"{ZH[i % 3]}这是第{i}号记录，内容编号{i * 7919 % 10007}，用于测试。"
        else:
            text = f"{EN[i % 3]} This is record number {i} with tag {i * 7919 % 10007} in it."
        out.append({"id": f"doc{i}", "text": text, "source": "test"})
    return out


def run_cli(pipeline: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["run", str(pipeline), *args])
    assert result.exit_code == 0, result.output
    summary: dict[str, Any] = json.loads((pipeline.parent / "out" / "summary.json").read_text())
    return summary


def test_contract_files_and_counts(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "a", "text": EN[0], "license": "cc-by-4.0"},
            {"id": "b", "text": EN[0], "license": "cc-by-4.0"},
            {"id": "c", "text": f"{ZH[0]}身份证{ID_NUMBER}。", "license": "cc-by-4.0"},
            {"id": "d", "text": ZH[1]},
        ],
    )
    stages = [*STAGES, {"stage": "language"}, {"stage": "pii", "action": "redact"}]
    stages.append({"stage": "compliance"})
    summary = run_cli(write_pipeline(tmp_path, stages, shard_size=2), "--workers", "1")
    kept = read_jsonl(tmp_path / "out" / "kept.jsonl")
    assert [r["id"] for r in kept] == ["a", "c"]
    assert kept[0]["license"] == "cc-by-4.0" and kept[0]["language"] == "en"  # metadata kept
    assert ID_NUMBER not in kept[1]["text"]
    rejected = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert [(r["record"]["id"], r["stage"], r["reason"]) for r in rejected] == [
        ("b", "dedup_exact", "exact_dup"),
        ("d", "compliance", "license"),
    ]
    counts = [(s["name"], s["in"], s["out"]) for s in summary["stages"]]
    assert counts[0] == ("normalize", 4, 4) and counts[-1] == ("compliance", 3, 2)
    assert summary["records_in"] == 4 and summary["records_out"] == 2
    checks = {row["check"]: row for row in summary["compliance"]}
    assert (
        checks["pii"]["removed"] >= 1 and "Art. 5(1)(c) data minimisation" in checks["pii"]["gdpr"]
    )
    assert checks["license"]["failed"] == 1
    assert not (tmp_path / "out" / "kept.jsonl.work").exists()
    report = (tmp_path / "out" / "report.html").read_text()
    assert "<svg" in report and "exact_dup" in report and "Art. 6(1)" in report
    assert "Quality input: length" in report
    assert ID_NUMBER not in report and "http" not in report.replace("http://www.w3.org", "")


def test_pool_dedups_across_shards_like_one_process(tmp_path: Path) -> None:
    results = []
    for workers in (1, 2):
        folder = tmp_path / f"w{workers}"
        folder.mkdir()
        write_jsonl(folder / "in.jsonl", corpus(200))
        summary = run_cli(write_pipeline(folder, STAGES, shard_size=6), "--workers", str(workers))
        results.append(((folder / "out" / "kept.jsonl").read_text(), summary["stages"]))
    assert results[0] == results[1]
    kept = [json.loads(line)["text"] for line in results[0][0].splitlines()]
    assert len(kept) == len(set(kept))
    dropped = {s["name"]: s["dropped"] for s in results[0][1]}
    assert dropped["dedup_exact"] == {"exact_dup": 20}  # every copy, though 7 records back
    assert dropped["dedup_near"]["near_dup"] >= 18


def test_resume_after_a_crash_gives_the_same_output(tmp_path: Path) -> None:
    reference = tmp_path / "ref"
    crashed = tmp_path / "crash"
    for folder in (reference, crashed):
        folder.mkdir()
        write_jsonl(folder / "in.jsonl", corpus(120))
        write_pipeline(folder, STAGES, shard_size=10)
    LocalRunner(load_pipeline(reference / "pipeline.yaml"), workers=1).run()

    def crash_after_third(shard: int, totals: list[StageTotals]) -> None:
        if shard == 2:
            raise KeyboardInterrupt

    spec = load_pipeline(crashed / "pipeline.yaml")
    with pytest.raises(KeyboardInterrupt):
        LocalRunner(spec, workers=1, progress=crash_after_third).run()
    LocalRunner(spec, workers=1).run()
    for name in ("kept.jsonl", "rejected.jsonl"):
        assert (crashed / "out" / name).read_text() == (reference / "out" / name).read_text()


def _processes_in(folder: Path) -> set[int]:
    """Live processes whose working directory is ``folder``."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "cwd").resolve() == folder.resolve():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.add(int(entry.name))
        except OSError:
            continue
    return found


def test_killed_run_resumes_without_duplicates(tmp_path: Path) -> None:
    reference = tmp_path / "ref"
    killed = tmp_path / "killed"
    for folder in (reference, killed):
        folder.mkdir()
        write_jsonl(folder / "in.jsonl", corpus(4000))
        write_pipeline(folder, STAGES, shard_size=100)
    LocalRunner(load_pipeline(reference / "pipeline.yaml"), workers=1).run()

    cmd = [sys.executable, "-m", "luodi.cli", "pipeline", "run", "pipeline.yaml", "--workers", "2"]
    proc = subprocess.Popen(cmd, cwd=killed, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    checkpoint = killed / "out" / "kept.jsonl.work" / "checkpoint.pkl"
    deadline = time.monotonic() + 120
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # polling another process's file: nothing to await
    workers = _processes_in(killed) - {proc.pid}
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "out" / "kept.jsonl").exists(), "the run finished before the kill"
    # Its pool's workers go with it (they used to wait on their queue forever).
    assert len(workers) == 2
    deadline = time.monotonic() + 15
    while _processes_in(killed) and time.monotonic() < deadline:
        time.sleep(0.1)  # other processes' exits: nothing to await
    assert not _processes_in(killed)

    result = subprocess.run(cmd, cwd=killed, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in ("kept.jsonl", "rejected.jsonl"):
        assert (killed / "out" / name).read_text() == (reference / "out" / name).read_text()
    ids = [r["id"] for r in read_jsonl(killed / "out" / "kept.jsonl")]
    assert len(ids) == len(set(ids))


def test_residue_with_stop_fails_the_run(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"id": "x", "text": f"{ZH[0]}证件号{ID_NUMBER}。"}])
    stages = [{"stage": "pii", "action": "redact", "entities": ["PHONE"], "on_residue": "stop"}]
    result = CliRunner().invoke(
        app, ["run", str(write_pipeline(tmp_path, stages)), "--workers", "2"]
    )
    assert result.exit_code == 1
    assert "PII residue" in result.output and "ID_CARD" in result.output
    assert not (tmp_path / "out" / "kept.jsonl").exists()


def test_a_different_pipeline_will_not_resume_anothers_work(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", corpus(30))
    spec = load_pipeline(write_pipeline(tmp_path, STAGES, shard_size=5))

    def crash(shard: int, totals: list[StageTotals]) -> None:
        if shard == 1:  # after shard 0's checkpoint
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalRunner(spec, workers=1, progress=crash).run()
    other = write_pipeline(tmp_path, STAGES[:2], shard_size=5)
    result = CliRunner().invoke(app, ["run", str(other), "--workers", "1"])
    assert result.exit_code == 2 and "different pipeline" in result.output


def test_chat_export_with_provenance(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "q1", "prompt": "图书馆什么时候闭馆？", "text": f"  {ZH[2]}  ", "src": "faq"},
            {"id": "q2", "text": EN[1]},
        ],
    )
    pipeline = write_pipeline(
        tmp_path,
        [{"stage": "normalize"}],
        format="chat",
        provenance=True,
        chat={"system": "你是图书馆助理。"},
    )
    summary = run_cli(pipeline, "--workers", "1")
    (row,) = read_jsonl(tmp_path / "out" / "kept.jsonl")
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert row["messages"][2]["content"] == ZH[2]
    assert row["metadata"] == {"id": "q1", "src": "faq"}
    prov = row["provenance"]
    assert prov["source"] == "in.jsonl" and prov["line"] == 1 and prov["stages"] == ["normalize"]
    assert prov["source_sha256"] != prov["sha256"]  # normalize trimmed the text
    (bad,) = read_jsonl(tmp_path / "out" / "rejected.jsonl")
    assert (bad["stage"], bad["reason"]) == ("export", "no_prompt")
    assert summary["records_out"] == 1 and summary["export_rejected"] == {"no_prompt": 1}


def test_kept_records_go_into_a_knowledge_base(tmp_path: Path) -> None:
    from luodi.cli.kb import app as kb_app

    write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"id": "closing", "text": ZH[2], "dept": "library"},
            {"id": "copy", "text": ZH[2]},
            {"id": "cooking", "text": EN[1]},
        ],
    )
    pipeline = write_pipeline(tmp_path, [{"stage": "dedup_exact"}], provenance=True)
    kb = tmp_path / "kb"
    result = CliRunner().invoke(
        app,
        ["run", str(pipeline), "--workers", "1", "--kb", "docs", "--data-dir", str(kb), "--json"],
    )
    assert result.exit_code == 0, result.output
    assert '"added": 2' in result.output
    found = CliRunner().invoke(kb_app, ["search", "docs", "图书馆闭馆", "--data-dir", str(kb)])
    assert found.exit_code == 0 and "closing.txt" in found.output


def test_near_dup_signatures_join_normalize_in_one_pool_round_trip() -> None:
    from luodi.pipeline.registry import StageContext, build_stages
    from luodi.pipeline.runner import _segments
    from luodi.pipeline.spec import parse_pipeline

    spec = parse_pipeline({"input": "a", "output": "b", "stages": [*STAGES, {"stage": "language"}]})
    segments = _segments(build_stages(spec, StageContext()))
    assert segments == [
        (True, [(0, False), (2, True)]),  # normalize, then dedup_near's signatures
        (False, [(1, False)]),  # dedup_exact
        (False, [(2, False)]),  # dedup_near's index
        (True, [(3, False), (4, False)]),  # quality, language
    ]


def test_csv_input_with_a_named_text_column(tmp_path: Path) -> None:
    rows = [f'1,"{EN[0]}",a', f'2,"{EN[0]}",b', f"3,{ZH[0]},c", f"4,{EN[1]},d"]
    (tmp_path / "in.csv").write_text("id,body,dept\n" + "\n".join(rows) + "\n", encoding="utf-8")
    stages = [{"stage": "dedup_exact"}]
    pipeline = write_pipeline(tmp_path, stages, input="in.csv", text_field="body")
    summary = run_cli(pipeline, "--workers", "1")
    kept = read_jsonl(tmp_path / "out" / "kept.jsonl")
    assert kept == [
        {"id": "1", "dept": "a", "text": EN[0]},
        {"id": "3", "dept": "c", "text": ZH[0]},
    ]
    assert summary["records_in"] == 4 and summary["unreadable_lines"] == {"bad_csv": 1}


def test_empty_input_writes_empty_output_and_a_summary(tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").write_text("")
    summary = run_cli(write_pipeline(tmp_path, STAGES), "--workers", "2")
    assert (tmp_path / "out" / "kept.jsonl").read_text() == ""
    assert summary["records_in"] == 0 and summary["stages"][0]["in"] == 0


def test_a_changed_input_is_not_resumed(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", corpus(30))
    spec = load_pipeline(write_pipeline(tmp_path, STAGES, shard_size=5))

    def crash(shard: int, totals: list[StageTotals]) -> None:
        if shard == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        LocalRunner(spec, workers=1, progress=crash).run()
    write_jsonl(tmp_path / "in.jsonl", corpus(31))
    result = CliRunner().invoke(app, ["run", str(tmp_path / "pipeline.yaml"), "--workers", "1"])
    assert result.exit_code == 2 and "different pipeline" in result.output


def test_parquet_input(tmp_path: Path) -> None:
    import datetime as dt

    pa = pytest.importorskip("pyarrow", reason="the parquet extra is not installed")
    pq = pytest.importorskip("pyarrow.parquet")
    table = pa.table(
        {
            "content": [EN[0], EN[0], ZH[0]],
            "n": [1, 2, 3],
            "when": [dt.date(2026, 1, d) for d in (1, 2, 3)],
        }
    )
    pq.write_table(table, tmp_path / "in.parquet", row_group_size=2)
    stages = [{"stage": "dedup_exact"}]
    pipeline = write_pipeline(tmp_path, stages, input="in.parquet", text_field="content")
    run_cli(pipeline, "--workers", "1")
    kept = read_jsonl(tmp_path / "out" / "kept.jsonl")
    assert kept == [
        {"n": 1, "when": "2026-01-01", "text": EN[0]},
        {"n": 3, "when": "2026-01-03", "text": ZH[0]},
    ]


def test_kb_with_chat_format_is_refused_before_the_run(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "in.jsonl", [{"id": "a", "text": EN[0], "prompt": "q"}])
    pipeline = write_pipeline(tmp_path, [{"stage": "normalize"}], format="chat")
    result = CliRunner().invoke(app, ["run", str(pipeline), "--kb", "docs"])
    assert result.exit_code == 2 and "--kb needs format: records" in result.output
    assert not (tmp_path / "out").exists()


def test_duplicate_clusters_and_quality_histograms_reach_summary_and_report(
    tmp_path: Path,
) -> None:
    write_jsonl(tmp_path / "in.jsonl", corpus(60))
    summary = run_cli(write_pipeline(tmp_path, STAGES, shard_size=16), "--workers", "1")
    exact = next(s for s in summary["stages"] if s["name"] == "dedup_exact")
    # doc(i+7) repeats doc(i) for i = 0, 10, ..., 50: six clusters of one copy each.
    assert exact["clusters"] == 6
    assert sorted(c["kept"] for c in exact["largest_clusters"]) == sorted(
        f"doc{i}" for i in range(0, 60, 10)
    )
    assert all(c["duplicates"] == 1 for c in exact["largest_clusters"])
    assert {c["examples"][0] for c in exact["largest_clusters"]} == {
        f"doc{i + 7}" for i in range(0, 60, 10)
    }
    near = next(s for s in summary["stages"] if s["name"] == "dedup_near")
    assert near["clusters"] >= 1 and near["largest_clusters"][0]["kept"].startswith("doc")
    quality = next(s for s in summary["stages"] if s["name"] == "quality")["stats"]
    assert any(k.startswith("hist:symbols:") for k in quality)
    assert any(k.startswith("hist:zh_punct:") for k in quality)
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Duplicate clusters: dedup_exact" in report
    assert "punctuation share" in report and "symbols per word" in report


def test_parquet_output_keeps_every_field(tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    rows = [
        {"id": "a", "text": EN[0], "score": 1, "tags": ["x"]},
        {"id": "b", "text": EN[1], "score": 2.5, "meta": {"k": "v"}},
        {"id": "c", "text": ZH[0], "flag": True},
    ]
    write_jsonl(tmp_path / "in.jsonl", rows)
    pipeline = write_pipeline(
        tmp_path, [{"stage": "normalize"}], output="out/kept.parquet", shard_size=2
    )
    result = CliRunner().invoke(app, ["run", str(pipeline), "--workers", "1"])
    assert result.exit_code == 0, result.output
    table = pq.read_table(tmp_path / "out" / "kept.parquet")
    got = table.to_pylist()
    assert [r["id"] for r in got] == ["a", "b", "c"]
    assert table.schema.field("score").type == "double"  # 1 and 2.5: one number column
    assert got[0]["tags"] == '["x"]' and json.loads(got[1]["meta"]) == {"k": "v"}
    assert got[2]["flag"] is True and got[0]["flag"] is None
    assert (tmp_path / "out" / "summary.json").exists()
