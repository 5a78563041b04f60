"""Generation tasks: SQuAD-style exact match and F1, and a run on luodi's chat route."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.generation import (
    Judge,
    exact_match,
    f1,
    load_generation_task,
    run_generation,
)
from luodi.evaluation.tasks import TaskFileError
from tests.conftest import LiveServer

TASKS = Path(__file__).parents[2] / "luodi" / "evaluation" / "tasks"


@pytest.mark.parametrize(
    ("prediction", "reference", "em", "score"),
    [
        ("The Pacific.", "Pacific", True, 1.0),
        ("the pacific ocean", "Pacific", False, 2 / 3),
        ("Paris", "London", False, 0.0),
        ("北京。", "北京", True, 1.0),
        ("北京市", "北京", False, 0.8),
    ],
)
def test_exact_match_and_f1_follow_squad_rules(
    prediction: str, reference: str, em: bool, score: float
) -> None:
    assert exact_match(prediction, reference) is em
    assert f1(prediction, reference) == pytest.approx(score)


@pytest.mark.parametrize("name", ["short_answer_en", "short_answer_zh"])
def test_bundled_short_answer_sets_load(name: str) -> None:
    assert len(load_generation_task(TASKS / f"{name}.jsonl")) == 10


def test_bad_generation_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "g.jsonl"
    path.write_text(json.dumps({"question": "q", "answer": "a"}) + "\n" + '{"question": "q"}\n')
    with pytest.raises(TaskFileError, match=rf"^{path}:2: 'answer' must be"):
        load_generation_task(path)


@pytest.mark.model
async def test_generation_run_on_the_chat_route(live_server: LiveServer) -> None:
    endpoint = Endpoint(live_server.url, live_server.model, api_key=live_server.api_key)
    try:
        result = await run_generation(TASKS / "short_answer_en.jsonl", endpoint, limit=4)
    finally:
        await endpoint.aclose()
    assert result.n == 4 and result.mode == "generation"
    assert result.f1 is not None and result.acc <= result.f1 + 1e-9
    assert all(isinstance(r["text"], str) for r in result.items)
    assert set(result.to_json()) >= {"acc", "f1", "n", "predictions"}


@pytest.mark.model
async def test_judge_gives_a_verdict_per_answer_and_is_named(live_server: LiveServer) -> None:
    endpoint = Endpoint(live_server.url, live_server.model, api_key=live_server.api_key)
    judge = Judge(Endpoint(live_server.url, live_server.model, api_key=live_server.api_key))
    try:
        result = await run_generation(
            TASKS / "short_answer_en.jsonl", endpoint, limit=2, judge=judge
        )
    finally:
        await endpoint.aclose()
        await judge.endpoint.aclose()
    assert result.judge is not None
    assert result.judge["model"] == live_server.model and "rubric" in result.judge
    assert 0.0 <= result.judge["accuracy"] <= 1.0
    assert all(isinstance(r["judge_correct"], bool) for r in result.items)
