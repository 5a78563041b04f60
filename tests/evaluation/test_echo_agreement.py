"""Echo scoring (lm-eval's request) and forced-token scoring give the same numbers.

A small stand-in server does what vLLM and llama-server do: ``echo`` with ``logprobs``
scores every prompt token (llama.cpp's logits for every position, with the kernels
luodi's engine uses). The same task scored three ways, echo on the stand-in, echo on
luodi and forced tokens on luodi, must pick the same answers with the same
log-probabilities.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.evaluation.capability import run_loglikelihood
from luodi.evaluation.endpoint import Endpoint
from luodi.evaluation.scoring import EchoScorer, ForcedTokenScorer
from luodi.evaluation.tasks import load_task
from luodi.security import Gateway
from tests.conftest import LiveServer, default_gguf, engine_settings, make_key, served

pytestmark = pytest.mark.model

TASKS = Path(__file__).parents[2] / "luodi" / "evaluation" / "tasks"


def _stand_in_app() -> Any:
    import llama_cpp
    from fastapi import FastAPI

    from luodi.engine.llamacpp.cpu_buffers import high_level_model_params

    with high_level_model_params(use_extra_bufts=False):
        llm = llama_cpp.Llama(
            model_path=str(default_gguf()),
            n_ctx=1024,
            n_threads=2,
            logits_all=True,
            verbose=False,
            type_k=llama_cpp.GGML_TYPE_Q8_0,
            type_v=llama_cpp.GGML_TYPE_Q8_0,
            flash_attn=True,
            swa_full=True,
        )
    lock = asyncio.Lock()
    app = FastAPI()

    def score(prompt: str) -> dict[str, Any]:
        ids = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        llm.reset()
        llm.eval(ids)
        rows = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
        peak = rows.max(axis=1, keepdims=True)
        logp = rows - peak - np.log(np.exp(rows - peak).sum(axis=1, keepdims=True))
        tokens, values, tops, offsets = [], [], [], []
        text = b""
        for i in range(1, len(ids)):  # the BOS has no text and no logprob
            piece = llm.detokenize([ids[i]])
            offsets.append(len(text.decode("utf-8", errors="replace")))
            text += piece
            tokens.append(piece.decode("utf-8", errors="replace"))
            values.append(float(logp[i - 1, ids[i]]))
            best = int(np.argmax(logp[i - 1]))
            tops.append(
                {llm.detokenize([best]).decode("utf-8", "replace"): float(logp[i - 1, best])}
            )
        nxt = int(np.argmax(logp[-1]))
        nxt_text = llm.detokenize([nxt]).decode("utf-8", errors="replace")
        tokens.append(nxt_text)
        values.append(float(logp[-1, nxt]))
        tops.append({nxt_text: float(logp[-1, nxt])})
        offsets.append(len(prompt))
        return {
            "choices": [
                {
                    "index": 0,
                    "text": prompt + nxt_text,
                    "logprobs": {
                        "tokens": tokens,
                        "token_logprobs": values,
                        "top_logprobs": tops,
                        "text_offset": offsets,
                    },
                    "finish_reason": "length",
                }
            ]
        }

    @app.post("/v1/completions")
    async def completions(body: dict[str, Any]) -> dict[str, Any]:
        assert body["echo"] and body["logprobs"] >= 1 and body["max_tokens"] == 1
        async with lock:
            return await asyncio.to_thread(score, body["prompt"])

    app.state.llm = llm
    return app


@pytest.fixture(scope="module")
async def echo_server() -> AsyncIterator[str]:
    app = await asyncio.to_thread(_stand_in_app)
    async with served(app) as url:
        yield url
    app.state.llm.close()


@pytest.fixture(scope="module")
async def fresh_luodi(
    model_cache: Path, live_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[LiveServer, LlamaCppEngine]]:
    """luodi over its own engine, without a prefix cache: the session engine may serve a
    prompt's prefix from KV computed in another batch by earlier tests, which moved a
    log-probability by up to 0.17 in the full suite (an engine matter, not scoring's)."""
    from luodi.api.app import create_app
    from luodi.config import KnowledgeSettings, Settings

    eng = LlamaCppEngine(engine_settings(model_cache, prefix_cache=False))
    await eng.start()
    settings = Settings(knowledge=KnowledgeSettings(data_dir=tmp_path_factory.mktemp("kb")))
    app = create_app(settings, engines={eng.info.name: eng}, gateway=live_gateway)
    key = make_key(live_gateway, "echo-agreement", ["developer"])
    try:
        async with served(app) as url:
            yield LiveServer(url, eng.info.name, app, key, live_gateway), eng
    finally:
        await eng.stop()


async def test_echo_and_forced_token_scoring_agree(
    echo_server: str, fresh_luodi: tuple[LiveServer, LlamaCppEngine]
) -> None:
    live_server, engine = fresh_luodi
    task = load_task(TASKS / "general_en.jsonl")
    echo_endpoint = Endpoint(echo_server, "stand-in", concurrency=1)
    luodi = Endpoint(live_server.url, live_server.model, api_key=live_server.api_key)

    def tokenize(text: str, special: bool) -> list[int]:
        return engine.tokenize(text, add_special=special)

    try:
        echo = await run_loglikelihood(task, EchoScorer(echo_endpoint), echo_endpoint, limit=6)
        forced = await run_loglikelihood(task, ForcedTokenScorer(luodi, tokenize), luodi, limit=6)
    finally:
        await echo_endpoint.aclose()
        await luodi.aclose()
    assert echo.predictions == forced.predictions
    assert echo.acc == forced.acc and echo.acc_norm == forced.acc_norm
    for a, b in zip(echo.items, forced.items, strict=True):
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-3)


async def test_echo_scoring_against_luodi_matches_the_stand_in(
    echo_server: str, fresh_luodi: tuple[LiveServer, LlamaCppEngine]
) -> None:
    live_server, _ = fresh_luodi
    task = load_task(TASKS / "general_en.jsonl")
    stand_in = Endpoint(echo_server, "stand-in", concurrency=1)
    luodi = Endpoint(live_server.url, live_server.model, api_key=live_server.api_key)
    try:
        reference = await run_loglikelihood(task, EchoScorer(stand_in), stand_in, limit=6)
        ours = await run_loglikelihood(task, EchoScorer(luodi), luodi, limit=6)
    finally:
        await stand_in.aclose()
        await luodi.aclose()
    assert ours.predictions == reference.predictions
    for a, b in zip(ours.items, reference.items, strict=True):
        assert a["logprobs"] == pytest.approx(b["logprobs"], abs=1e-3)
