"""POST /v1/embeddings: parse, run the gateway pipeline, shape the answer."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from luodi.api.deps import PipelineDep
from luodi.api.gateway import PrincipalDep
from luodi.api.openai.protocol import EmbeddingData, EmbeddingResponse, EmbeddingUsage
from luodi.api.openai.schemas import EmbeddingRequest
from luodi.api.pipeline import EmbeddingWork
from luodi.errors import InvalidRequestError

__all__ = ["router"]

router = APIRouter()

_MAX_INPUTS = 2048


def _inputs(body: EmbeddingRequest) -> list[str]:
    raw = body.input
    if isinstance(raw, str):
        texts = [raw]
    elif raw and all(isinstance(x, str) for x in raw):
        texts = list(raw)  # type: ignore[arg-type]
    elif raw:
        raise InvalidRequestError(
            f"{body.model} takes text input; token-id input is not supported", param="input"
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
    body: EmbeddingRequest, pipeline: PipelineDep, principal: PrincipalDep, request: Request
) -> JSONResponse:
    """OpenAI embeddings: one or many texts, float or base64 vectors, with usage."""
    work = EmbeddingWork(texts=[], dimensions=body.dimensions)
    exchange = pipeline.open(principal, request, body.model, work)
    async with pipeline.guarding(exchange):
        work.texts = _inputs(body)
        await pipeline.run(exchange)  # Launch runs the embedder: there is no engine
    await pipeline.finish(exchange)
    data: list[EmbeddingData] = []
    for i, row in enumerate(work.vectors):
        value: Any = (
            base64.b64encode(row.astype("<f4").tobytes()).decode()
            if body.encoding_format == "base64"
            else row.tolist()
        )
        data.append(EmbeddingData(index=i, embedding=value))
    usage = exchange.usage
    response = EmbeddingResponse(
        data=data,
        model=body.model,
        usage=EmbeddingUsage(prompt_tokens=usage.prompt_tokens, total_tokens=usage.total_tokens),
    )
    return JSONResponse(response.wire())
