"""Protect: PII analyze → anonymize every outbound text; forced for off-premises models."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from luodi.api.pipeline.exchange import ChatWork, CompletionWork, EmbeddingWork, Exchange
from luodi.engine.base import TextEngine
from luodi.errors import InvalidRequestError
from luodi.privacy import PIIBlockedError, PIIStage, ProtectedInput

__all__ = ["Protect"]

_J = TypeVar("_J")


class Protect:
    """Masks messages, prompts and embedding inputs with the caller's PII policy.

    A model with a backend off the premises is always masked (``force``), whatever
    the key's policy says. Token-id prompts cannot be masked: one that holds personal
    data is refused. Present only when ``privacy.enabled``; fails closed (a detector
    that runs out of time refuses the request, it does not let it through).
    """

    name = "protect"

    def __init__(self, pii: Callable[[], PIIStage | None]) -> None:
        self._pii = pii
        """The PII stage the lifespan started (reloaded by the privacy admin API)."""

    async def run(self, exchange: Exchange) -> None:
        stage = self._pii()
        if stage is None:
            return
        work = exchange.work
        if isinstance(work, ChatWork):
            if exchange.leaves_premises:
                _refuse_unmaskable(work.messages)
            # Everything else that is sent along is client text too: tool definitions,
            # the response_format schema, template arguments, stop strings.
            work.options = await self._json(stage, exchange, work.options)
            work.params.stop = await self._json(stage, exchange, work.params.stop)
            work.messages = await self._messages(stage, exchange, work.messages)
        elif isinstance(work, CompletionWork):
            work.params.stop = await self._json(stage, exchange, work.params.stop)
            work.prompts = [await self._prompt(stage, exchange, p) for p in work.prompts]
        elif isinstance(work, EmbeddingWork):
            work.texts = [await self._text(stage, exchange, t) for t in work.texts]
        exchange.masked = True

    async def _messages(
        self, stage: PIIStage, exchange: Exchange, messages: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        protected = await stage.protect_messages(
            messages,
            policy=exchange.principal.pii_policy,
            conversation_id=exchange.conversation_id,
            force=exchange.leaves_premises,
            owner=exchange.principal,  # pseudonyms are restored only to the key that made them
        )
        _found(exchange, protected)
        return protected.messages or messages

    async def _json(self, stage: PIIStage, exchange: Exchange, value: _J) -> _J:
        if not value:
            return value
        protected = await stage.protect_json(
            value,
            policy=exchange.principal.pii_policy,
            conversation_id=exchange.conversation_id,
            force=exchange.leaves_premises,
            owner=exchange.principal,
        )
        _found(exchange, protected)
        masked: _J = protected.value
        return masked

    async def _text(self, stage: PIIStage, exchange: Exchange, text: str) -> str:
        protected = await stage.protect_text(
            text,
            policy=exchange.principal.pii_policy,
            conversation_id=exchange.conversation_id,
            force=exchange.leaves_premises,
            owner=exchange.principal,  # pseudonyms are restored only to the key that made them
        )
        _found(exchange, protected)
        return protected.text if protected.text is not None else text

    async def _prompt(
        self, stage: PIIStage, exchange: Exchange, prompt: str | list[int]
    ) -> str | list[int]:
        if isinstance(prompt, str):
            return await self._text(stage, exchange, prompt)
        engine = exchange.engine
        text = engine.detokenize(prompt) if isinstance(engine, TextEngine) else ""
        if text and await self._text(stage, exchange, text) != text:
            raise InvalidRequestError(
                "this token-id prompt holds personal data that cannot be masked in token form;"
                " send it as text",
                param="prompt",
            )
        return prompt


def _found(exchange: Exchange, protected: ProtectedInput) -> None:
    exchange.protected.append(protected)
    for entity, count in protected.findings.items():
        exchange.pii_findings[entity] = exchange.pii_findings.get(entity, 0) + count


def _refuse_unmaskable(messages: list[dict[str, Any]]) -> None:
    """Refuse content parts bound off the premises that text detection cannot inspect.

    An image or audio part can carry a face, a signature or a scanned ID card; nothing
    here can mask it, so a request that would send one to a cloud backend fails closed.
    """
    for index, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind != "text":
                raise PIIBlockedError(
                    [f"messages[{index}] {kind or 'non-text'} content"],
                    policy="off-premises: only text can be masked",
                )
