"""Ground: knowledge-base retrieval into the chat's messages, with citations."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from luodi.api.knowledge_caller import kb_caller
from luodi.api.pipeline.exchange import ChatWork, Exchange
from luodi.errors import ServiceUnavailableError
from luodi.knowledge import KnowledgeService

__all__ = ["Ground"]


class Ground:
    """Retrieve from the knowledge bases a chat names (ACL-filtered) into its prompt.

    Before Protect, so retrieved passages are masked too before anything leaves.
    """

    name = "ground"

    def __init__(self, knowledge: Callable[[], KnowledgeService | None]) -> None:
        self._knowledge = knowledge
        """The service, or None when no embedding model is served: it starts later."""

    async def run(self, exchange: Exchange) -> None:
        work = exchange.work
        if not isinstance(work, ChatWork) or not work.kb:
            return
        knowledge = self._knowledge()
        if knowledge is None:
            raise ServiceUnavailableError("knowledge bases are not available on this server")
        grounded, found = await knowledge.ground(
            work.messages, work.kb, work.kb_top_k, kb_caller(exchange.principal)
        )
        work.messages = grounded
        exchange.citations = [dataclasses.asdict(c) for c in found]
