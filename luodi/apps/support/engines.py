"""The engines an assistant's turn runs on, so its answer leaves through the usual way out.

``AssistantModel`` is what ``support/<name>`` names in the server's model table (it lists
the assistant in ``/v1/models`` and lets the pipeline find it); the ``Assist`` stage
then puts the turn's real engine on the exchange: ``ScriptedReply`` for what the
platform says itself (slot questions, webhook results, hand-offs, "I don't know"), or
``GroundedAnswer`` around the assistant's model, which adds the citations to the end of
the answer and keeps the answer in the session.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from luodi.engine.base import Engine
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    PromptRequest,
    Usage,
)
from luodi.errors import ServiceUnavailableError

__all__ = ["AssistantModel", "GroundedAnswer", "ScriptedReply"]


def _info(name: str, context_length: int = 8192) -> ModelInfo:
    return ModelInfo(
        name=name, context_length=context_length, capabilities=("chat",), backend="support"
    )


class AssistantModel:
    """The served name of an assistant; its turns run on the engine the stage chooses."""

    def __init__(self, name: str) -> None:
        self._info = _info(name)

    @property
    def info(self) -> ModelInfo:
        return self._info

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def prepare(self, request: PromptRequest) -> list[GenerationRequest]:
        raise ServiceUnavailableError(
            f"{self._info.name} answers chat completions through its assistant only"
        )

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        raise ServiceUnavailableError(f"{self._info.name} is not a generating model")

    def abort(self, request_id: str) -> None:
        return None

    def health(self) -> dict[str, object]:
        return {"status": "ok", "kind": "support assistant"}


class ScriptedReply:
    """Answers every choice with one fixed text, as a single event (no model runs)."""

    def __init__(self, name: str, text: str) -> None:
        self._info = _info(name)
        self.text = text

    @property
    def info(self) -> ModelInfo:
        return self._info

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def prepare(self, request: PromptRequest) -> list[GenerationRequest]:
        return [
            GenerationRequest(params=request.params, model=request.model, priority=request.priority)
            for _ in range(request.n)
        ]

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        yield GenerationEvent(
            request.request_id,
            text=self.text,
            finish_reason=FinishReason.STOP,
            usage=Usage(prompt_tokens=0, completion_tokens=0),
            backend="support",
        )

    def abort(self, request_id: str) -> None:
        return None

    def health(self) -> dict[str, object]:
        return {"status": "ok"}


class GroundedAnswer:
    """The assistant's model, with the answer's sources appended and the answer kept.

    ``footer`` (the numbered sources) is added to the last event of a choice that
    finished normally; ``on_answer`` receives the first choice's full text then.
    """

    def __init__(
        self,
        base: Engine,
        footer: str,
        on_answer: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self._base = base
        self._footer = footer
        self._on_answer = on_answer
        self._first: str | None = None

    @property
    def info(self) -> ModelInfo:
        return self._base.info

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def prepare(self, request: PromptRequest) -> list[GenerationRequest]:
        planned = self._base.prepare(request)
        self._first = planned[0].request_id if planned else None
        return planned

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        stream = self._base.generate(request)
        said: list[str] = []
        try:
            async for event in stream:
                said.append(event.text)
                if (
                    event.finished
                    and not event.error
                    and event.finish_reason
                    in (
                        FinishReason.STOP,
                        FinishReason.LENGTH,
                    )
                ):
                    event.text += self._footer
                    if self._on_answer is not None and request.request_id == self._first:
                        await self._on_answer("".join(said) + self._footer)
                yield event
        finally:
            await stream.aclose()  # type: ignore[attr-defined]

    def abort(self, request_id: str) -> None:
        self._base.abort(request_id)

    def health(self) -> dict[str, Any]:
        return self._base.health()
