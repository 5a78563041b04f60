"""POST /v1/embeddings."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from luodi.api.deps import StateDep
from luodi.api.gateway import PrincipalDep, Trail
from luodi.api.openai.generation import usage_body
from luodi.api.openai.schemas import EmbeddingRequest
from luodi.embedding import Embedder
from luodi.engine.types import Usage
from luodi.errors import InvalidRequestError

__all__ = ["router"]

router = APIRouter()

_MAX_INPUTS = 2048


def _inputs(body: EmbeddingRequest, embedder: Embedder) -> list[str]:
    raw = body.input
    if isinstance(raw, str):
        texts = [raw]
    elif raw and all(isinstance(x, str) for x in raw):
        texts = list(raw)  # type: ignore[arg-type]
    elif raw:
        raise InvalidRequestError(
            f"{embedder.name} takes text input; token-id input is not supported", param="input"
        )
    else:
        texts = []
    if not texts:
        raise InvalidRequestError("input must not be empty", param="input")
    if len(texts) > _MAX_INPUTS:
        raise InvalidRequestError(
            f"at most {_MAX_INPUTS} inputs per request, got {len(texts)}", param="input"
        )
    if any(not t for t in texts):
        raise InvalidRequestError("input strings must not be empty", param="input")
    return texts


@router.post("/v1/embeddings")
async def create_embeddings(
    body: EmbeddingRequest, state: StateDep, principal: PrincipalDep, request: Request
) -> JSONResponse:
    """OpenAI embeddings: one or many texts, float or base64 vectors, with usage."""
    trail = Trail.open(state, principal, request, body.model)
    async with trail.guarding():
        embedder = state.embedder_for(body.model)
        trail.authorize()
        texts = [await trail.protect_text(t) for t in _inputs(body, embedder)]
        if body.dimensions is not None and body.dimensions != embedder.dim:
            raise InvalidRequestError(
                f"{embedder.name} gives {embedder.dim}-dimensional vectors; it cannot shorten"
                f" them to {body.dimensions}",
                param="dimensions",
            )
        counts = embedder.count_tokens(texts)
        tokens = sum(min(c, embedder.max_tokens) for c in counts)
        await trail.admit(tokens)  # no engine to launch: the embedder runs right here
        vectors = await asyncio.to_thread(embedder.embed, texts)
    trail.prompt = "\n".join(texts)
    trail.usage = Usage(prompt_tokens=tokens)
    await trail.finish()
    data: list[dict[str, Any]] = []
    for i, row in enumerate(vectors):
        value: Any = (
            base64.b64encode(row.astype("<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else row.tolist()
        )
        data.append({"object": "embedding", "index": i, "embedding": value})
    usage = usage_body(trail.usage)
    return JSONResponse(
        {
            "object": "list",
            "data": data,
            "model": body.model,
            "usage": {
                "prompt_tokens": usage["prompt_tokens"],
                "total_tokens": usage["total_tokens"],
            },
        }
    )
