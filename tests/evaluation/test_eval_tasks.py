"""Task files: the bundled sets load, and a bad line is named by file and line."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from luodi.evaluation.scoring import extract_letter
from luodi.evaluation.server_process import LUODI
from luodi.evaluation.tasks import TaskFileError, load_task

TASKS = Path(__file__).parents[2] / "luodi" / "evaluation" / "tasks"
GOOD = {"question": "q?", "choices": ["a", "b"], "answer": 1}


@pytest.mark.parametrize("name", ["general_en", "general_zh"])
def test_bundled_task_sets_load_with_twenty_items(name: str) -> None:
    task = load_task(TASKS / f"{name}.jsonl")
    assert len(task.items) == 20
    assert all(0 <= it.answer < len(it.choices) for it in task.items)


def test_yaml_definition_beside_the_file_sets_the_template() -> None:
    task = load_task(TASKS / "general_zh.jsonl")
    assert task.definition.context(task.items[0], []).startswith("问题：")


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("{not json", "not JSON"),
        (json.dumps({**GOOD, "answer": 2}), "'answer' must be an index"),
        (json.dumps({**GOOD, "answer": True}), "'answer' must be an index"),
        (json.dumps({**GOOD, "choices": ["only"]}), "'choices' must be a list"),
        (json.dumps({**GOOD, "question": ""}), "'question' must be"),
        ("[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_line_is_named_by_file_and_line(tmp_path: Path, line: str, says: str) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + line + "\n", encoding="utf-8")
    with pytest.raises(TaskFileError) as err:
        load_task(path)
    assert str(err.value).startswith(f"{path}:3: ")
    assert says in str(err.value)


def test_bad_yaml_definition_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(GOOD) + "\n", encoding="utf-8")
    path.with_suffix(".yaml").write_text("fewshots: 2\n", encoding="utf-8")
    with pytest.raises(TaskFileError, match="unknown keys"):
        load_task(path)


def test_fewshot_examples_skip_the_item_asked(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    rows = [{**GOOD, "question": f"q{i}?"} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    path.with_suffix(".yaml").write_text("fewshot: 2\n", encoding="utf-8")
    task = load_task(path)
    assert [ex.question for ex in task.examples_for(0)] == ["q1?", "q2?"]
    assert [ex.question for ex in task.examples_for(1)] == ["q0?", "q2?"]
    context = task.definition.context(task.items[0], task.examples_for(0))
    assert context.count("Answer: b") == 2 and context.endswith("Question: q0?\nAnswer:")


@pytest.mark.parametrize(
    ("text", "index"),
    [('{"answer": "B"}', 1), ('{"answer": "E"}', -1), ("The answer is C.", 2), ("none", -1)],
)
def test_letter_extraction_is_exact_match(text: str, index: int) -> None:
    assert extract_letter(text, ["A", "B", "C", "D"]) == index


async def test_cli_bad_task_file_is_one_line_and_nonzero_exit(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps({**GOOD, "answer": 9}) + "\n")
    proc = await asyncio.create_subprocess_exec(
        *LUODI,
        "eval",
        "capability",
        "--endpoint",
        "http://127.0.0.1:9",
        "--model",
        "m",
        "--task",
        str(path),
        "--mode",
        "loglikelihood",
        "--out",
        str(tmp_path / "r.json"),
        env={**os.environ, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 2
    lines = err.decode().strip().splitlines()
    assert lines == [f"error: {path}:2: 'answer' must be an index into choices (0..1), got 9"]
    assert not (tmp_path / "r.json").exists()


def test_a_task_translates_to_lm_evals_yaml_and_refuses_what_it_cannot(tmp_path: Path) -> None:
    import yaml

    from luodi.errors import ConfigError
    from luodi.evaluation.lm_eval_task import lm_eval_task_yaml

    task = load_task(TASKS / "general_en.jsonl")
    doc = yaml.safe_load(lm_eval_task_yaml(task, "t"))
    assert doc["doc_to_text"] == "Question: {{question}}\nAnswer:"
    assert doc["target_delimiter"] == " " and doc["dataset_kwargs"]["data_files"]["test"]
    (tmp_path / "fewshot.jsonl").write_text((TASKS / "general_en.jsonl").read_text())
    (tmp_path / "fewshot.yaml").write_text("fewshot: 2\n")
    with pytest.raises(ConfigError, match="zero-shot"):
        lm_eval_task_yaml(load_task(tmp_path / "fewshot.jsonl"), "t")
