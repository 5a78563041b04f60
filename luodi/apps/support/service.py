"""``SupportService``: the assistants of one server and the parts their turns share.

Built by ``install_support`` from the settings; the parts the server starts later (the
engines, the embedding model, the knowledge bases) are reached through its state when a
turn needs them, never captured before they exist.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from luodi.apps.support.assistant import Assistant
from luodi.apps.support.catalog import AssistantCatalog
from luodi.apps.support.classifier import LayerStates
from luodi.apps.support.conductor import Conductor, Turn
from luodi.apps.support.engines import AssistantModel
from luodi.apps.support.judge import IntentJudge, generate_text
from luodi.apps.support.model_states import ModelStates
from luodi.apps.support.recognizer import IntentRecognizer
from luodi.apps.support.redis_sessions import RedisSessionStore
from luodi.apps.support.sessions import DatabaseSessionStore, SessionStore
from luodi.apps.support.webhook import WebhookError, call_webhook
from luodi.config import Settings
from luodi.embedding import Embedder
from luodi.engine.base import Engine, LocalEngine
from luodi.engine.pool import OnDemand, PooledEngine
from luodi.engine.types import SamplingParams
from luodi.errors import LuodiError, NotFoundError, ServiceUnavailableError
from luodi.knowledge.grounding import inject_context
from luodi.knowledge.types import Hit
from luodi.security import AuditEvent, Principal

if TYPE_CHECKING:
    from luodi.api.state import AppState

__all__ = ["MODEL_PREFIX", "SupportService"]

log = logging.getLogger(__name__)

MODEL_PREFIX = "support/"


class SupportService:
    """Assistants by name, their recognizer, sessions and conversation logic."""

    def __init__(self, settings: Settings, state: AppState, catalog: AssistantCatalog) -> None:
        self.settings = settings.support
        self._state = state
        self.catalog = catalog
        self.model_states = ModelStates(self.settings)
        self.recognizer = IntentRecognizer(
            self.settings, self._embedder, self._judge, self._model_states
        )
        self.sessions = _session_store(settings)
        self.conductor = Conductor(
            self.settings, self.recognizer, self.sessions, lambda: state.knowledge, self._embedder
        )
        self._generation = -1
        self._tasks: set[asyncio.Task[None]] = set()
        self._warmed: dict[str, Assistant] = {}
        self.sync_models()

    # -- the server's parts -----------------------------------------------------------

    def _embedder(self) -> Embedder | None:
        return next(iter(self._state.embedders.values()), None)

    def pick_engine(self, assistant: Assistant) -> tuple[str, Engine]:
        """The model that answers and classifies for ``assistant``: its ``model``, or the
        first embedded model the server runs (its own engine or the pool's)."""
        engines = self._state.engines
        if assistant.model is not None:
            engine = engines.get(assistant.model)
            if engine is None:
                raise ServiceUnavailableError(
                    f"{assistant.model_name}: its model {assistant.model!r} is not served"
                )
            return assistant.model, engine
        for name, engine in engines.items():
            pooled = isinstance(engine, PooledEngine) and engine.adapter is None
            if pooled or isinstance(engine, LocalEngine):
                return name, engine
        raise ServiceUnavailableError(f"{assistant.model_name}: no embedded model is served")

    async def base_engine(self, assistant: Assistant) -> tuple[str, Engine]:
        """``pick_engine``'s model, loaded (a pooled model may have been unloaded)."""
        name, engine = self.pick_engine(assistant)
        if isinstance(engine, OnDemand):
            await engine.ensure_loaded()
        return name, engine

    def _judge(self, assistant: Assistant) -> IntentJudge | None:
        try:
            name, engine = self.pick_engine(assistant)
        except ServiceUnavailableError:
            return None
        return IntentJudge(engine, name)

    def _model_states(self, assistant: Assistant) -> LayerStates | None:
        try:
            _, engine = self.pick_engine(assistant)
        except ServiceUnavailableError:
            return None
        return self.model_states.for_engine(engine)

    # -- assistants ---------------------------------------------------------------------

    def sync_models(self) -> None:
        """Make the served model names match the assistants (after a reload)."""
        self.catalog.refresh()
        if self._generation == self.catalog.generation:
            return
        engines = self._state.engines
        wanted = {a.model_name for a in self.catalog.assistants.values()}
        for name in [n for n in engines if n.startswith(MODEL_PREFIX) and n not in wanted]:
            del engines[name]
        for name in wanted:
            if not isinstance(engines.get(name), AssistantModel):
                engines[name] = AssistantModel(name)
        self._generation = self.catalog.generation

    def assistant(self, name: str) -> Assistant:
        """The assistant called ``name`` (404 naming the ones there are)."""
        self.sync_models()
        found = self.catalog.assistants.get(name)
        if found is None:
            names = ", ".join(sorted(self.catalog.assistants)) or "none"
            raise NotFoundError(
                f"the assistant '{name}' does not exist; assistants: {names}",
                param="model",
                code="model_not_found",
            )
        return found

    def reload(self) -> list[str]:
        """Reload every file now (AssistantFileError keeps the old ones)."""
        names = self.catalog.reload()
        self.sync_models()
        return names

    # -- warm-up ----------------------------------------------------------------------

    def warm_soon(self, assistant: Assistant) -> None:
        """Warm ``assistant`` in the background, once per version of its file."""
        if self._warmed.get(assistant.name) is assistant:
            return
        self._warmed[assistant.name] = assistant
        task = asyncio.get_running_loop().create_task(self._warm_logged(assistant))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _warm_logged(self, assistant: Assistant) -> None:
        try:
            await self.warm(assistant)
        except LuodiError as exc:
            log.warning("warming %s failed: %s", assistant.model_name, exc.message)

    async def warm(self, assistant: Assistant) -> None:
        """Build the intent index and pin the prompts' stable heads in the engine's prefix
        cache: the judge's intent block, and the persona with the grounding instruction
        (keys ``support:<name>:judge`` and ``:persona``; a reload replaces them)."""
        self._warmed[assistant.name] = assistant
        await asyncio.to_thread(self.recognizer.model_for, assistant)
        judge = self._judge(assistant)
        if judge is None:
            return
        await judge.choose(
            assistant, assistant.intents[:1], "你好", pin=f"support:{assistant.name}:judge"
        )
        name, engine = await self.base_engine(assistant)
        passage = Hit("warm", "warm", "faq", 0, "…", 0.0)
        messages = inject_context(
            [{"role": "system", "content": assistant.persona}, {"role": "user", "content": "你好"}],
            [passage],
        )
        await generate_text(
            engine,
            name,
            messages,
            SamplingParams(temperature=0.0, max_tokens=1),
            pin=f"support:{assistant.name}:persona",
        )

    # -- hand-off ---------------------------------------------------------------------

    async def announce_handoff(
        self, principal: Principal, assistant: Assistant, turn: Turn, source_ip: str
    ) -> None:
        """Record the hand-off in the audit log and tell the escalation webhook, if any."""
        session = turn.session
        detail: dict[str, Any] = {
            "assistant": assistant.name,
            "conversation": session.conversation if session else None,
            "reason": turn.handoff,
        }
        await self._state.gateway.audit(
            AuditEvent.for_request(
                principal,
                endpoint="support.handoff",
                reason=turn.handoff,
                source_ip=source_ip,
                model=assistant.model_name,
                detail=detail,
            )
        )
        url = assistant.escalation.webhook
        if url is None:
            return
        payload = {
            **detail,
            "event": "handoff",
            "tenant": session.tenant if session else None,
            "transcript": session.transcript[-10:] if session else [],
        }
        task = asyncio.get_running_loop().create_task(self._notify(url, payload))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _notify(self, url: str, payload: dict[str, Any]) -> None:
        try:
            await call_webhook(url, payload, self.settings)
        except WebhookError as exc:
            log.warning("hand-off webhook failed: %s", exc.message)

    def close(self) -> None:
        self.sessions.close()
        self.model_states.close()


def _session_store(settings: Settings) -> SessionStore:
    """The store ``support.session_store`` names."""
    support = settings.support
    if support.session_store == "redis":
        return RedisSessionStore(
            support.redis_url, prefix=support.redis_prefix, ttl_s=support.session_ttl_s
        )
    return DatabaseSessionStore(settings.storage, ttl_s=support.session_ttl_s)
