"""Capability scoring against a real luodi server on the default model."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import numpy as np
import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.evaluation.cache import ResponseCache
from luodi.evaluation.capability import run_generate, run_loglikelihood
from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.scoring import ChatChooser, EchoScorer, ForcedTokenScorer
from luodi.evaluation.server_process import LUODI
from luodi.evaluation.tasks import LETTERS, load_task
from tests.conftest import LiveServer, default_gguf

pytestmark = pytest.mark.model

TASKS = Path(__file__).parents[2] / "luodi" / "evaluation" / "tasks"


def _endpoint(server: LiveServer, cache: ResponseCache | None = None) -> Endpoint:
    return Endpoint(server.url, server.model, api_key=server.api_key, concurrency=4, cache=cache)


def _forced(
    server: LiveServer, engine: LlamaCppEngine, cache: ResponseCache | None = None
) -> tuple[Endpoint, ForcedTokenScorer]:
    endpoint = _endpoint(server, cache)

    def tokenize(text: str, special: bool) -> list[int]:
        return engine.tokenize(text, add_special=special)

    return endpoint, ForcedTokenScorer(endpoint, tokenize)


def _direct_logprob(context: list[int], continuation: list[int]) -> float:
    """The continuation's summed logprob from llama.cpp's logits, outside luodi."""
    import llama_cpp

    from luodi.engine.llamacpp.cpu_buffers import high_level_model_params

    # The kernels luodi's engine uses: unrepacked weights (and, process-wide, no tiled
    # matmul: conftest's select_kernels), a Q8_0 cache, flash attention.
    with high_level_model_params(use_extra_bufts=False):
        llm = llama_cpp.Llama(
            model_path=str(default_gguf()),
            n_ctx=512,
            n_threads=2,
            logits_all=True,
            verbose=False,
            type_k=llama_cpp.GGML_TYPE_Q8_0,
            type_v=llama_cpp.GGML_TYPE_Q8_0,
            flash_attn=True,
            swa_full=True,
        )
    try:
        llm.eval(context + continuation)
        total = 0.0
        for i, token in enumerate(continuation):
            row = np.asarray(llm.scores[len(context) + i - 1], dtype=np.float64)
            peak = row.max()
            total += float(row[token] - peak - np.log(np.exp(row - peak).sum()))
        return total
    finally:
        llm.close()


async def test_forced_token_loglikelihood_agrees_with_the_model_logits(
    live_server: LiveServer, engine: LlamaCppEngine
) -> None:
    endpoint, scorer = _forced(live_server, engine)
    try:
        context, continuation = "Question: What is the capital of France?\nAnswer:", " Paris"
        ctx, cont = scorer.split(context, continuation)
        score = await scorer.score(context, continuation)
    finally:
        await endpoint.aclose()
    direct = await asyncio.to_thread(_direct_logprob, ctx, cont)
    # Same weights, kernels and cache type: equal to float rounding (with F16 cache and
    # repacked weights, llama-cpp-python defaults, it is 0.08 off on this model).
    assert score.logprob == pytest.approx(direct, abs=1e-3)
    assert score.logprob < 0


async def test_echo_scoring_against_luodi_scores_the_continuation(
    live_server: LiveServer,
) -> None:
    endpoint = _endpoint(live_server)
    try:
        right = await EchoScorer(endpoint).score("Question: 1+1?\nAnswer:", " 2")
        odd = await EchoScorer(endpoint).score("Question: 1+1?\nAnswer:", " zebra zebra")
    finally:
        await endpoint.aclose()
    assert right.logprob < 0 and odd.logprob < right.logprob


async def test_interrupted_run_resumes_from_the_cache(
    live_server: LiveServer, engine: LlamaCppEngine, tmp_path: Path
) -> None:
    task = load_task(TASKS / "general_en.jsonl")
    cache = ResponseCache(tmp_path / "cache.sqlite")
    try:
        endpoint, scorer = _forced(live_server, engine, cache)
        first = await run_loglikelihood(task, scorer, endpoint, limit=3)  # stopped after 3
        await endpoint.aclose()
        endpoint, scorer = _forced(live_server, engine, cache)
        resumed = await run_loglikelihood(task, scorer, endpoint, limit=5)
        await endpoint.aclose()
        assert resumed.cache_hits == first.requests_sent > 0
        assert resumed.predictions[:3] == first.predictions
        endpoint, scorer = _forced(live_server, engine, cache)
        again = await run_loglikelihood(task, scorer, endpoint, limit=5)
        await endpoint.aclose()
        assert again.requests_sent == 0
        assert again.to_json() | {"wall_s": 0, "cache_hits": 0} == resumed.to_json() | {
            "wall_s": 0,
            "cache_hits": 0,
            "requests_sent": 0,
        }
    finally:
        cache.close()
    assert resumed.n == 5 and len(resumed.predictions) == 5
    assert 0.0 <= resumed.acc <= 1.0 and resumed.acc_norm is not None


async def test_generate_mode_on_the_chat_route_answers_a_letter(live_server: LiveServer) -> None:
    task = load_task(TASKS / "general_en.jsonl")
    endpoint = _endpoint(live_server)
    try:
        result = await run_generate(task, ChatChooser(endpoint), limit=4)
    finally:
        await endpoint.aclose()
    assert result.n == 4 and result.acc_norm is None
    for row, item in zip(result.items, task.items, strict=False):
        answer = json.loads(row["text"])["answer"]  # the schema held
        assert answer in LETTERS[: len(item.choices)]
        assert row["pred"] == LETTERS.index(answer)


async def test_cli_writes_the_contracted_result(live_server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "result.json"
    proc = await asyncio.create_subprocess_exec(
        *LUODI,
        "eval",
        "capability",
        "--endpoint",
        live_server.url,
        "--model",
        live_server.model,
        "--task",
        str(TASKS / "general_zh.jsonl"),
        "--mode",
        "loglikelihood",
        "--tokenizer",
        str(default_gguf()),
        "--limit",
        "2",
        "--out",
        str(out),
        env={**os.environ, "LUODI_API_KEY": live_server.api_key, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    text, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
    assert proc.returncode == 0, text.decode()
    result = json.loads(out.read_text())
    assert result["n"] == 2 and len(result["predictions"]) == 2
    assert {"acc", "acc_norm", "predictions"} <= set(result)
    assert (tmp_path / "result.json.cache.sqlite").is_file()


async def test_cli_local_scores_the_embedded_engine_and_resumes(tmp_path: Path) -> None:
    out = tmp_path / "local.json"
    args = [
        *LUODI,
        "eval",
        "capability",
        "--local",
        "--task",
        str(TASKS / "general_en.jsonl"),
        "--mode",
        "loglikelihood",
        "--limit",
        "2",
        "--out",
        str(out),
    ]
    env = {
        **os.environ,
        "COLUMNS": "200",
        "LUODI_ENGINE__N_THREADS": "2",
        "LUODI_ENGINE__N_CTX": "2048",
    }
    results = []
    for _ in range(2):  # the second run, on a new port, is answered from the cache
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        text, _ = await asyncio.wait_for(proc.communicate(), timeout=300)
        assert proc.returncode == 0, text.decode()
        results.append(json.loads(out.read_text()))
    first, second = results
    assert first["n"] == 2 and first["scorer"] == "ForcedTokenScorer"
    assert second["requests_sent"] == 0 and second["predictions"] == first["predictions"]
