"""What the LLM learners call: a chat model and an embedding model, behind two protocols.

In the server both go through the gateway pipeline (``gateway.py``), exactly as a
client's ``/v1/chat/completions`` and ``/v1/embeddings`` would; the CLI and the
benchmark reach a luodi server over HTTP (``HttpChat``, ``HttpEmbeddings``), so their
calls are authenticated, authorized, masked and audited there too. Only embedding
vectors may come from an in-process model (``LocalEmbeddings``): no text leaves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx
import numpy as np
from numpy.typing import NDArray

from luodi.embedding import Embedder
from luodi.engine.types import TokenLogprob
from luodi.errors import UpstreamError

__all__ = [
    "ChatModel",
    "ChatReply",
    "HttpChat",
    "HttpEmbeddings",
    "LocalEmbeddings",
    "TextEmbeddings",
    "json_schema_format",
]


@dataclass(slots=True)
class ChatReply:
    """A constrained answer: its text and each token's log-probability and top alternatives."""

    text: str
    tokens: list[TokenLogprob] = field(default_factory=list)
    model: str = ""


class ChatModel(Protocol):
    """A chat model answering in JSON that follows ``schema``, greedy, with logprobs."""

    @property
    def name(self) -> str:
        """The model's name (what the audit record says answered)."""
        ...

    async def complete(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], *, max_tokens: int
    ) -> ChatReply:
        """One greedy answer constrained by ``schema``, with top log-probabilities."""
        ...


class TextEmbeddings(Protocol):
    """An embedding model: texts in, L2-normalised rows out."""

    @property
    def name(self) -> str:
        """The embedding model's name."""
        ...

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """Embed ``texts`` in order."""
        ...


TOP_LOGPROBS = 20
"""Alternatives asked per token: enough to hold all three decisions at the value."""


def json_schema_format(schema: dict[str, Any], name: str = "risk_decision") -> dict[str, Any]:
    """The OpenAI ``response_format`` for ``schema``."""
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": True}}


def _tokens(logprobs: dict[str, Any] | None) -> list[TokenLogprob]:
    if not logprobs:
        return []
    return [
        TokenLogprob(
            e["token"],
            float(e["logprob"]),
            [(t["token"], float(t["logprob"])) for t in e.get("top_logprobs") or []],
        )
        for e in logprobs.get("content") or []
    ]


class HttpChat:
    """A chat model on an OpenAI-compatible server (a luodi server: its gateway applies)."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 300):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout
        )
        self._model = model

    @property
    def name(self) -> str:
        return self._model

    async def complete(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], *, max_tokens: int
    ) -> ChatReply:
        body = {
            "model": self._model,
            "messages": messages,
            "response_format": json_schema_format(schema),
            "temperature": 0,
            "max_tokens": max_tokens,
            "logprobs": True,
            "top_logprobs": TOP_LOGPROBS,
        }
        response = await self._client.post("/v1/chat/completions", json=body)
        if response.status_code != 200:
            raise UpstreamError(
                f"{self._model}: HTTP {response.status_code}: {response.text[:300]}"
            )
        choice = response.json()["choices"][0]
        return ChatReply(
            choice["message"].get("content") or "", _tokens(choice.get("logprobs")), self._model
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class HttpEmbeddings:
    """An embedding model on an OpenAI-compatible server's ``/v1/embeddings``."""

    def __init__(self, base_url: str, model: str, api_key: str | None = None, timeout: float = 300):
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), headers=headers, timeout=timeout
        )
        self._model = model

    @property
    def name(self) -> str:
        return self._model

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        rows: list[list[float]] = []
        for start in range(0, len(texts), 256):
            batch = list(texts[start : start + 256])
            response = await self._client.post(
                "/v1/embeddings", json={"model": self._model, "input": batch}
            )
            if response.status_code != 200:
                raise UpstreamError(
                    f"{self._model}: HTTP {response.status_code}: {response.text[:300]}"
                )
            rows.extend(
                d["embedding"] for d in sorted(response.json()["data"], key=lambda d: d["index"])
            )
        return np.asarray(rows, dtype=np.float32)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


class LocalEmbeddings:
    """An in-process ``Embedder`` (the CLI's and tests' offline path), run in a worker thread."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder

    @property
    def name(self) -> str:
        return self._embedder.name

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return await asyncio.to_thread(self._embedder.embed, list(texts))
