"""lm-evaluation-harness and ``luodi eval`` score the same task on a luodi server alike.

lm-eval's ``local-completions`` model runs against the live server with its remote
tokenizer (luodi's vLLM-style /tokenize and /tokenizer_info), so nothing is downloaded;
the task is a local JSONL file given to lm-eval as a task YAML. Prompts go as text
(``tokenized_requests=False``): lm-eval's token-id requests carry no BOS, which Gemma
needs (docs/evaluation.md).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from luodi.evaluation.capability import run_loglikelihood
from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.lm_eval_task import lm_eval_task_yaml
from luodi.evaluation.scoring import EchoScorer
from luodi.evaluation.tasks import load_task
from tests.conftest import LiveServer

pytestmark = pytest.mark.model

TASK = Path(__file__).parents[2] / "luodi" / "evaluation" / "tasks" / "general_en.jsonl"
LIMIT = 8


def _lm_eval(server: LiveServer, include: Path) -> dict[str, Any]:
    from lm_eval import simple_evaluate
    from lm_eval.tasks import TaskManager

    args = (
        f"model={server.model},base_url={server.url}/v1/completions,tokenizer_backend=remote,"
        f"tokenized_requests=False,num_concurrent=1,max_retries=1,auth_token={server.api_key}"
    )
    return simple_evaluate(  # type: ignore[no-any-return]
        model="local-completions",
        model_args=args,
        tasks=["luodi_general_en"],
        task_manager=TaskManager(include_path=str(include)),
        limit=LIMIT,
        log_samples=True,
    )


async def test_lm_eval_and_luodi_eval_agree(
    live_server: LiveServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("lm_eval")
    monkeypatch.setenv("OPENAI_API_KEY", live_server.api_key)  # lm-eval's completions header
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf"))
    yaml_text = lm_eval_task_yaml(load_task(TASK), "luodi_general_en")
    (tmp_path / "luodi_general_en.yaml").write_text(yaml_text, encoding="utf-8")
    theirs = await asyncio.to_thread(_lm_eval, live_server, tmp_path)

    endpoint = Endpoint(live_server.url, live_server.model, api_key=live_server.api_key)
    try:
        ours = await run_loglikelihood(load_task(TASK), EchoScorer(endpoint), endpoint, limit=LIMIT)
    finally:
        await endpoint.aclose()

    samples = sorted(theirs["samples"]["luodi_general_en"], key=lambda s: s["doc_id"])
    their_picks = [
        max(range(len(s["filtered_resps"])), key=lambda i: float(s["filtered_resps"][i][0]))
        for s in samples
    ]
    their_acc = theirs["results"]["luodi_general_en"]["acc,none"]
    assert their_picks == list(ours.predictions), json.dumps(samples[0]["filtered_resps"])
    assert abs(their_acc - ours.acc) <= 0.01
