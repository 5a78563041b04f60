"""The gateway pipeline: built once from the settings, in the documented order; a
request refused at any stage leaves exactly one audit record; routes never name the
engine's class.

No model runs here: a byte-tokenizing engine and an upstream engine stand in.
"""

from __future__ import annotations

import ast
import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from luodi.api.app import create_app
from luodi.api.pipeline import build_pipeline
from luodi.api.state import AppState
from luodi.config import PrivacySettings, Settings, StorageSettings
from luodi.config.routing import BackendKind, BackendSettings
from luodi.engine.planning import completion_limit, expand, pass_through
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    PromptRequest,
    Usage,
)
from luodi.engine.upstream import UpstreamEngine
from luodi.security import AuditFilter, Gateway, Limits
from tests.conftest import make_key, served

ROOT = Path(__file__).resolve().parents[2]
ORDER = ("authorize", "load", "ground", "fit", "protect", "route", "limit", "launch")


class ByteEngine:
    """A TextEngine without a model: one token per byte; every answer is "ok"."""

    def __init__(self, name: str = "bytes", context_length: int = 256) -> None:
        self._info = ModelInfo(name=name, context_length=context_length, backend="bytes")

    @property
    def info(self) -> ModelInfo:
        return self._info

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]:
        return list(text.encode())

    def detokenize(self, tokens: list[int]) -> str:
        return bytes(tokens).decode(errors="replace")

    def prepare(self, request: PromptRequest) -> list[GenerationRequest]:
        if request.chat is not None:
            return pass_through(request)
        prompt = request.prompt or ""
        tokens = self.tokenize(prompt) if isinstance(prompt, str) else list(prompt)
        room = self.info.context_length - len(tokens)
        limit = completion_limit(request.params.max_tokens, None, room)
        return expand(request, max_tokens=limit, prompt_tokens=tokens)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        usage = Usage(prompt_tokens=len(request.prompt_tokens) or 3, completion_tokens=1)
        yield GenerationEvent(
            request.request_id, text="ok", finish_reason=FinishReason.STOP, usage=usage
        )

    def abort(self, request_id: str) -> None:
        pass

    def health(self) -> dict[str, object]:
        return {"status": "ok"}


def test_the_pipeline_runs_the_documented_stages_in_order() -> None:
    on = build_pipeline(Settings(), AppState(Settings()))
    off = Settings(privacy=PrivacySettings(enabled=False))
    assert on.names == ORDER
    assert build_pipeline(off, AppState(off)).names == tuple(s for s in ORDER if s != "protect")
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    chain = re.search(r"gateway chain\s+(\w+(?: → \w+)+)", doc)
    assert chain is not None and tuple(chain.group(1).split(" → ")) == ("authenticate", *ORDER)


def test_no_api_module_names_an_engine_class() -> None:
    """Routes plan through ``engine.prepare``; only the engine package knows its classes."""
    offenders = []
    for path in sorted((ROOT / "luodi" / "api").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                names = {a.name for a in node.names}
                if node.module == "luodi.engine.llamacpp.engine" or names & {
                    "LlamaCppEngine",
                    "UpstreamEngine",
                }:
                    offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
            elif isinstance(node, ast.Name) and node.id == "LlamaCppEngine":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders


@pytest.fixture
async def gateway_app(tmp_path: Path) -> AsyncIterator[tuple[str, Gateway, Any]]:
    settings = Settings(storage=StorageSettings(database_url=f"sqlite:///{tmp_path / 'p.db'}"))
    gateway = await Gateway.create(settings.security, settings.storage)
    dead = BackendSettings(
        name="gone", kind=BackendKind.VLLM, url="http://127.0.0.1:9/v1", max_retries=0
    )
    upstream = UpstreamEngine(dead, model="up")
    await upstream.start()
    engines = {"bytes": ByteEngine(), "up": upstream}
    app = create_app(settings, engines=engines, gateway=gateway, embedders={})  # type: ignore[arg-type]
    try:
        async with served(app) as url:
            yield url, gateway, app
    finally:
        await upstream.stop()
        await gateway.close()


def chat(model: str = "bytes", **extra: Any) -> tuple[str, dict[str, Any]]:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}
    return "/v1/chat/completions", body


def completion(prompt: Any, model: str = "bytes") -> tuple[str, dict[str, Any]]:
    return "/v1/completions", {"model": model, "prompt": prompt, "max_tokens": 4}


DENIALS = {
    "authorize": (["auditor"], {}, chat(), 403),
    "ground": (["developer"], {}, chat(kb=["faq"]), 503),
    "fit": (["developer"], {}, completion("x" * 300), 400),
    "protect": (["developer"], {}, completion(list("手机13812345678".encode())), 400),
    "route": (["developer"], {}, completion([1, 2, 3], model="up"), 400),
    "limit": (["developer"], {"limits": Limits(tokens_per_minute=1)}, completion("hello"), 429),
    "launch": (["developer"], {}, completion("hello", model="up"), 502),
}


@pytest.mark.parametrize("stage", list(DENIALS))
async def test_a_request_refused_at_each_stage_leaves_one_denied_record(
    gateway_app: tuple[str, Gateway, Any], stage: str
) -> None:
    url, gateway, _ = gateway_app
    roles, key_args, (path, body), status = DENIALS[stage]
    key = make_key(gateway, f"refused-at-{stage}", roles, **key_args)
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        resp = await http.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    assert resp.status_code == status, resp.text
    records = gateway.audit_log.query(AuditFilter(user=f"refused-at-{stage}"))
    assert [r["decision"] for r in records] == ["denied"]


async def test_a_draining_server_refuses_at_limit_with_one_record(
    gateway_app: tuple[str, Gateway, Any],
) -> None:
    url, gateway, app = gateway_app
    key = make_key(gateway, "while-draining", ["developer"])
    app.state.luodi.drain.draining = True
    try:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            path, body = chat()
            resp = await http.post(path, json=body, headers={"Authorization": f"Bearer {key}"})
    finally:
        app.state.luodi.drain.draining = False
    assert resp.status_code == 503 and resp.headers["retry-after"]
    records = gateway.audit_log.query(AuditFilter(user="while-draining"))
    assert [r["decision"] for r in records] == ["denied"]


async def test_answers_keep_their_wire_shape(gateway_app: tuple[str, Gateway, Any]) -> None:
    url, gateway, _ = gateway_app
    key = make_key(gateway, "shapes", ["developer"])
    async with httpx.AsyncClient(
        base_url=url, timeout=30, headers={"Authorization": f"Bearer {key}"}
    ) as http:
        path, body = chat()
        whole = (await http.post(path, json=body)).json()
        path, body = completion("hello")
        text = (await http.post(path, json=body)).json()
        path, body = chat(stream=True, stream_options={"include_usage": True})
        async with http.stream("POST", path, json=body) as resp:
            lines = [line async for line in resp.aiter_lines() if line.startswith("data: ")]
    assert list(whole) == ["id", "object", "created", "model", "choices", "usage"]
    assert whole["choices"] == [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "ok"},
            "logprobs": None,
            "finish_reason": "stop",
        }
    ]
    assert list(whole["usage"]) == [
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
    ]
    assert text["object"] == "text_completion"
    assert text["choices"] == [
        {"index": 0, "text": "ok", "logprobs": None, "finish_reason": "stop"}
    ]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    assert chunks[0]["choices"] == [
        {
            "index": 0,
            "delta": {"role": "assistant", "content": ""},
            "logprobs": None,
            "finish_reason": None,
        }
    ]
    assert [c["choices"][0]["finish_reason"] for c in chunks[1:-1]] == [None, "stop"]
    assert all("usage" not in c and "citations" not in c for c in chunks[:-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["total_tokens"] == 4
    records = gateway.audit_log.query(AuditFilter(user="shapes"))
    assert [r["decision"] for r in records] == ["allowed"] * 3


class GatedEngine(ByteEngine):
    """Holds its first token, then the rest of its answer, until the test lets each go."""

    def __init__(self) -> None:
        super().__init__("gated")
        self.first = asyncio.Event()
        self.rest = asyncio.Event()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        await self.first.wait()
        yield GenerationEvent(request.request_id, text="o")
        await self.rest.wait()
        usage = Usage(prompt_tokens=3, completion_tokens=2)
        yield GenerationEvent(
            request.request_id, text="k", finish_reason=FinishReason.STOP, usage=usage
        )


async def test_a_request_counts_as_awaiting_until_its_first_token(tmp_path: Path) -> None:
    """Background ingests wait while this count is not zero (knowledge/jobs.py)."""
    settings = Settings(storage=StorageSettings(database_url=f"sqlite:///{tmp_path / 'a.db'}"))
    gateway = await Gateway.create(settings.security, settings.storage)
    engine = GatedEngine()
    app = create_app(settings, engines={"gated": engine}, gateway=gateway, embedders={})  # type: ignore[dict-item]
    awaiting = app.state.luodi.awaiting
    key = make_key(gateway, "awaits", ["developer"])
    path, body = chat("gated", stream=True)

    async def until(check: Any) -> None:
        for _ in range(500):
            if check():
                return
            await asyncio.sleep(0.01)
        raise AssertionError("timed out")

    try:
        async with served(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
            headers = {"Authorization": f"Bearer {key}"}

            async def stream() -> str:
                async with http.stream("POST", path, json=body, headers=headers) as resp:
                    return "".join([line async for line in resp.aiter_lines()])

            answer = asyncio.create_task(stream())
            await until(lambda: len(awaiting) == 1)
            engine.first.set()
            await until(lambda: len(awaiting) == 0)  # streaming on: serving no longer waits
            assert not answer.done()
            engine.rest.set()
            text = await answer
            assert '"o"' in text and '"k"' in text
            refused = await http.post(path, json={**body, "model": "nope"}, headers=headers)
            assert refused.status_code == 404 and len(awaiting) == 0
    finally:
        await gateway.close()
