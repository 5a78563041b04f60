"""The LLM learners' calls in the server: through the gateway pipeline, as a client's would be.

``PipelineChat`` runs a chat request through ``Pipeline`` exactly as
``/v1/chat/completions`` does (authorize the caller for the model, protect, route,
limit, launch, restore, audit: one record per call), and ``PipelineEmbeddings`` an
``/v1/embeddings`` request. Nothing here reaches an engine directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from fastapi import Request
from numpy.typing import NDArray

from luodi.api.openai.generation import collect_all
from luodi.api.pipeline import ChatWork, EmbeddingWork, Pipeline
from luodi.apps.risk.clients import TOP_LOGPROBS, ChatReply, json_schema_format
from luodi.engine.types import SamplingParams, Usage
from luodi.security import Principal

__all__ = ["PipelineChat", "PipelineEmbeddings"]


class PipelineChat:
    """A chat model reached through the gateway pipeline, as the calling principal."""

    def __init__(self, pipeline: Pipeline, principal: Principal, request: Request, model: str):
        self._pipeline = pipeline
        self._principal = principal
        self._request = request
        self._model = model

    @property
    def name(self) -> str:
        return self._model

    async def complete(
        self, messages: list[dict[str, Any]], schema: dict[str, Any], *, max_tokens: int
    ) -> ChatReply:
        pipeline = self._pipeline
        work = ChatWork(
            messages=messages,
            options={"response_format": json_schema_format(schema)},
            params=SamplingParams(temperature=0.0, max_tokens=max_tokens, logprobs=TOP_LOGPROBS),
        )
        exchange = pipeline.open(self._principal, self._request, self._model, work)
        async with pipeline.guarding(exchange):
            await pipeline.run(exchange)
            [result] = await collect_all(exchange.primed)
            exchange.raise_if_aborted()
        exchange.response.append(result.text)
        exchange.usage = Usage(
            result.usage.prompt_tokens, result.usage.completion_tokens, result.usage.cached_tokens
        )
        message: dict[str, Any] = {"role": "assistant", "content": result.text}
        if exchange.chat is not None:  # luodi rendered the prompt: parse thinking etc. here
            message = exchange.chat.output_parser().parse(result.text).to_openai()
        message = pipeline.answer(exchange).message(message)  # pseudonyms back
        await pipeline.finish(exchange)
        return ChatReply(message.get("content") or "", list(result.logprobs), self._model)


class PipelineEmbeddings:
    """An embedding model reached through the gateway pipeline."""

    def __init__(self, pipeline: Pipeline, principal: Principal, request: Request, model: str):
        self._pipeline = pipeline
        self._principal = principal
        self._request = request
        self._model = model

    @property
    def name(self) -> str:
        return self._model

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        pipeline = self._pipeline
        rows: list[Any] = []
        for start in range(0, len(texts), 2048):
            work = EmbeddingWork(texts=list(texts[start : start + 2048]))
            exchange = pipeline.open(self._principal, self._request, self._model, work)
            async with pipeline.guarding(exchange):
                await pipeline.run(exchange)
            await pipeline.finish(exchange)
            rows.extend(work.vectors)
        return np.asarray(rows, dtype=np.float32).reshape(len(rows), -1)
