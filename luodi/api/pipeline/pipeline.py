"""The gateway pipeline: its stages in order, assembled once from the settings.

``build_pipeline`` (called by ``create_app``) decides which stages a server runs:
a stage that is off is absent (Protect without ``privacy.enabled``), not a branch
in every request. Routes parse the wire request into a ``Work``, ``open`` an
``Exchange``, ``run`` it, shape the answer, and ``finish`` it; ``guarding`` makes
sure a refusal, a hang-up or a crash still writes the one audit record.

Order, and why (docs/architecture.md):

1. authorize: may the principal invoke the model and read the knowledge bases?
   load: an on-demand embedded model is loaded (only for a caller allowed to use it);
2. ground: retrieved passages join the messages, so Protect masks them too;
3. fit: an over-long prompt is a 400 before Protect spends its time budget on it;
4. protect: PII masked in everything that leaves (forced off the premises);
5. route: the engine plans the masked request (``engine.prepare``); nothing is sent;
6. limit: drain and quotas admit the planned prompt's tokens;
7. launch: every choice starts, first event in hand.

Then, on the way out: restore (pseudonyms back, per channel) and audit.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING

from fastapi import Request

from luodi.api.pipeline.audit import Audit
from luodi.api.pipeline.authorize import Authorize
from luodi.api.pipeline.exchange import EmbeddingWork, Exchange, Work
from luodi.api.pipeline.fit import Fit
from luodi.api.pipeline.ground import Ground
from luodi.api.pipeline.launch import Launch
from luodi.api.pipeline.limit import Limit
from luodi.api.pipeline.load import Load
from luodi.api.pipeline.protect import Protect
from luodi.api.pipeline.restore import AnswerRestorer, Restore
from luodi.api.pipeline.route import Route
from luodi.api.pipeline.stage import Stage
from luodi.api.request_gate import CLIENT_IP_KEY
from luodi.config import Settings
from luodi.errors import LuodiError
from luodi.security import Decision, Gateway, Principal

if TYPE_CHECKING:
    from luodi.api.state import AppState

__all__ = ["Pipeline", "build_pipeline", "client_ip"]


def client_ip(request: Request) -> str:
    """The client's address as the RequestGate resolved it (trusted proxies only)."""
    known: str | None = getattr(request.state, CLIENT_IP_KEY, None)
    if known is not None:
        return known
    gateway: Gateway = request.app.state.luodi.gateway
    return gateway.client_address(request.scope)


class Pipeline:
    """The stages every model request passes, in order, and the way back out."""

    def __init__(
        self, state: AppState, stages: Sequence[Stage], *, restore: Restore, audit: Audit
    ) -> None:
        self._state = state
        self.stages = tuple(stages)
        self.restore = restore
        self.audit = audit

    @property
    def names(self) -> tuple[str, ...]:
        """The forward stages' names, in the order they run."""
        return tuple(stage.name for stage in self.stages)

    def open(self, principal: Principal, request: Request, model: str, work: Work) -> Exchange:
        """Start one request's exchange; it counts as in flight until its record is written."""
        conversation = request.headers.get("x-luodi-conversation") or uuid.uuid4().hex
        exchange = Exchange(
            principal,
            request.url.path,
            client_ip(request),
            model,
            work,
            # The tenant is part of the id, so tenants never share a pseudonym map.
            conversation_id=f"{principal.tenant}:{conversation}",
            leaves_premises=self._state.leaves_premises(model),
        )
        self.audit.enter(exchange)
        return exchange

    async def run(self, exchange: Exchange) -> None:
        """Find the model, then pass every stage; a refusal raises (``guarding`` audits it)."""
        if isinstance(exchange.work, EmbeddingWork):
            exchange.embedder = self._state.embedder_for(exchange.model)
        else:
            exchange.engine = self._state.engine_for(exchange.model)
        # Until Launch has the first event in hand, background jobs hold back.
        with self._state.awaiting.waiting():
            for stage in self.stages:
                await stage.run(exchange)

    def answer(self, exchange: Exchange) -> AnswerRestorer:
        """The restorers of ``exchange``'s answer (Restore)."""
        return self.restore.answer(exchange)

    async def finish(self, exchange: Exchange) -> None:
        """Charge the real usage and write the allowed record (once)."""
        await self.audit.record(exchange, Decision.ALLOWED, "; ".join(exchange.notes) or None)

    @contextlib.asynccontextmanager
    async def guarding(self, exchange: Exchange) -> AsyncIterator[Exchange]:
        """Audit what ends the request inside: a refusal (denied), a hang-up, a crash."""
        try:
            yield exchange
        except LuodiError as exc:
            await self.audit.record(exchange, Decision.DENIED, exc.message)
            raise
        except asyncio.CancelledError:
            # The client hung up (or the server is shutting down): still one record.
            reason = "; ".join([*exchange.notes, "cancelled"])
            await self.audit.record(exchange, Decision.ALLOWED, reason)
            raise
        except Exception as exc:  # a 500: the handler maps it, the record is owed here
            reason = f"internal error: {type(exc).__name__}"
            await self.audit.record(exchange, Decision.DENIED, reason)
            raise


def build_pipeline(settings: Settings, state: AppState) -> Pipeline:
    """The server's pipeline; parts the lifespan starts later are reached through ``state``."""

    def gateway() -> Gateway:
        return state.gateway

    stages: list[Stage] = [
        Authorize(gateway),
        Load(),
        Ground(lambda: state.knowledge),
        Fit(),
    ]
    if settings.privacy.enabled:
        stages.append(Protect(lambda: state.pii))
    stages += [
        Route(settings.engine.default_max_tokens),
        Limit(gateway, state.drain, settings.engine.default_max_tokens),
        Launch(),
    ]
    return Pipeline(state, stages, restore=Restore(), audit=Audit(gateway, state.drain))
