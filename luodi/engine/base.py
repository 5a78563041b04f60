"""The Engine protocol every backend implements: embedded llama.cpp, vLLM, a cloud API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Protocol, runtime_checkable

from luodi.engine.observer import EngineObserver
from luodi.engine.types import (
    GenerationEvent,
    GenerationRequest,
    ModelInfo,
    PromptRequest,
    TemplateMetadata,
)

__all__ = [
    "AdaptedEngine",
    "Engine",
    "FileBackedEngine",
    "LocalEngine",
    "TemplatedEngine",
    "TextEngine",
]


@runtime_checkable
class Engine(Protocol):
    """Runs generations; ``generate`` streams events until one carries a finish reason.

    Breaking out of the iterator (or cancelling the task consuming it) aborts the
    request and frees its resources within one engine step.
    """

    @property
    def info(self) -> ModelInfo: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def prepare(self, request: PromptRequest) -> list[GenerationRequest]:
        """Plan one client request: one ``GenerationRequest`` per choice.

        The engine decides what it needs: the embedded one renders the chat (with the
        request's renderer) and tokenizes; an upstream passes messages or text
        through. Either way the completion limit follows ``luodi.engine.planning``.
        Nothing is started: a request too long for the context is refused here.
        """
        ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]: ...

    def abort(self, request_id: str) -> None: ...

    def health(self) -> dict[str, object]: ...


@runtime_checkable
class TextEngine(Engine, Protocol):
    """An engine that owns a tokenizer and a chat template (the embedded one)."""

    def tokenize(self, text: str, *, add_special: bool = True) -> list[int]: ...

    def detokenize(self, tokens: list[int]) -> str: ...


@runtime_checkable
class AdaptedEngine(Protocol):
    """A model served under one of its LoRA adapters (``<model>:<adapter>``).

    Access is the model's: RBAC and key allowlists see the name without the adapter.
    """

    @property
    def adapter(self) -> str | None: ...


@runtime_checkable
class TemplatedEngine(TextEngine, Protocol):
    """A text engine that can say how its model's prompts look (tokenizer_info)."""

    @property
    def template_metadata(self) -> TemplateMetadata: ...


@runtime_checkable
class LocalEngine(TextEngine, Protocol):
    """An engine in this process (the embedded one): its template, and an observer.

    ``luodi.chat`` compiles the template from ``template_metadata`` (at start-up, so a
    bad one fails there); ``observer`` receives its queue and step timings (metrics).
    """

    observer: EngineObserver

    @property
    def template_metadata(self) -> TemplateMetadata: ...


@runtime_checkable
class FileBackedEngine(Protocol):
    """An engine whose loaded model is a GGUF file this process can open again."""

    @property
    def weights_file(self) -> Path | None:
        """The loaded model's file; None while no model is loaded."""
        ...
