"""One turn of a conversation: recognise, decide, act; the session remembers the rest.

``Conductor.turn`` reads the session, classifies the user's message and decides what the
assistant does, in this order:

1. a session handed to a human is not answered by the model (a waiting note);
2. an escalation phrase ("转人工") or repeated low confidence hands off;
3. a pending slot question takes the message as its answer when it validates (another
   confident intent changes the subject instead; anything else is asked again, politely);
4. otherwise the intent's action: a fixed reply, slots then a webhook, a hand-off, or an
   answer grounded in the knowledge bases with citations, or "I don't know" when no
   passage is relevant.

What comes out is a ``Turn``: a reply to send as it is, or the messages for the model.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from luodi.apps.support.assistant import OUT_OF_SCOPE, Assistant, Intent
from luodi.apps.support.classifier import Classification
from luodi.apps.support.glossary import default_glossary
from luodi.apps.support.lexical import language_of
from luodi.apps.support.recognizer import IntentRecognizer
from luodi.apps.support.relevance import RelevanceCheck
from luodi.apps.support.sessions import SessionStore, SupportSession
from luodi.apps.support.webhook import WebhookError, call_webhook
from luodi.config.support import SupportSettings
from luodi.embedding import Embedder
from luodi.errors import NotFoundError
from luodi.knowledge import KnowledgeService
from luodi.knowledge.grounding import citations_of, inject_context
from luodi.knowledge.types import Citation, Hit

__all__ = ["Conductor", "Turn"]

log = logging.getLogger(__name__)


@dataclass
class Turn:
    """What the assistant does with one user message."""

    intent: str
    confidence: float
    path: str
    action: str
    """reply, ask_slot, invalid_slot, webhook, webhook_failed, handoff, waiting,
    out_of_scope, unknown (nothing relevant retrieved) or answer (the model answers)."""
    reply: str | None = None
    """The text to send as it is; None when the model answers from ``messages``."""
    messages: list[dict[str, Any]] = field(default_factory=list)
    citations: list[Citation] = field(default_factory=list)
    handoff: str | None = None
    """Why the session was just handed off, if it was."""
    latency_ms: float = 0.0
    session: SupportSession | None = None

    def note(self, assistant: str) -> str:
        """The audit record's line for this turn."""
        return (
            f"support/{assistant}: intent={self.intent} confidence={self.confidence:.3f} "
            f"path={self.path} action={self.action} latency_ms={self.latency_ms:.0f}"
        )


class _Escalate(Exception):
    def __init__(self, reason: str) -> None:
        self.reason = reason


class Conductor:
    """Runs turns for every assistant on the shared recognizer, sessions and knowledge."""

    def __init__(
        self,
        settings: SupportSettings,
        recognizer: IntentRecognizer,
        sessions: SessionStore,
        knowledge: Callable[[], KnowledgeService | None],
        embedder: Callable[[], Embedder | None],
    ) -> None:
        self.settings = settings
        self.recognizer = recognizer
        self.sessions = sessions
        self._knowledge = knowledge
        self.relevance = RelevanceCheck(
            embedder, default_glossary, min_relevance=settings.min_relevance
        )

    async def turn(self, assistant: Assistant, conversation: str, tenant: str, text: str) -> Turn:
        """Decide and act on ``text``; the session is saved before this returns."""
        start = time.perf_counter()
        session = await asyncio.to_thread(self.sessions.load, assistant.name, conversation, tenant)
        lang = language_of(text)
        if session.handoff:
            turn = Turn("-", 0.0, "-", "waiting", assistant.messages.waiting.say(lang))
        else:
            result = await self.recognizer.classify(assistant, text)
            try:
                turn = await self._decide(assistant, session, text, result, lang)
            except _Escalate as escalation:
                turn = Turn(
                    result.intent,
                    result.confidence,
                    result.path,
                    "handoff",
                    assistant.messages.handoff.say(lang),
                    handoff=escalation.reason,
                )
            session.note_intent(
                {
                    "intent": result.intent,
                    "confidence": round(result.confidence, 4),
                    "path": result.path,
                    "action": turn.action,
                }
            )
        if turn.handoff is not None:
            session.handoff = True
            session.handoff_reason = turn.handoff
            session.pending = None
        session.remember("user", text)
        if turn.reply is not None:
            session.remember("assistant", turn.reply)
        await asyncio.to_thread(self.sessions.save, session)
        turn.session = session
        turn.latency_ms = (time.perf_counter() - start) * 1000
        return turn

    async def remember_answer(self, session: SupportSession, answer: str) -> None:
        """Add the model's answer to the session's transcript once it is complete."""
        fresh = await asyncio.to_thread(
            self.sessions.load, session.assistant, session.conversation, session.tenant
        )
        fresh.remember("assistant", answer)
        await asyncio.to_thread(self.sessions.save, fresh)

    # -- deciding ---------------------------------------------------------------------

    async def _decide(
        self,
        assistant: Assistant,
        session: SupportSession,
        text: str,
        result: Classification,
        lang: str,
    ) -> Turn:
        lowered = text.lower()
        if any(p.lower() in lowered for p in assistant.escalation.phrases):
            raise _Escalate("asked for a human")
        pending = assistant.intent(session.pending) if session.pending else None
        if pending is not None:
            # An answer to the slot question is not a low-confidence turn, whatever the
            # classifier makes of a bare order number.
            changed = (
                result.intent not in (pending.name, OUT_OF_SCOPE)
                and result.confidence >= self.settings.accept_confidence
                and not _slot_values(pending, text)
            )
            if not changed:
                return await self._slots(assistant, session, pending, text, result, lang, True)
            session.pending = None
        escalation = assistant.escalation
        session.low_streak = (
            session.low_streak + 1 if result.confidence < escalation.low_confidence else 0
        )
        if session.low_streak >= escalation.low_confidence_turns:
            session.low_streak = 0
            raise _Escalate(f"{escalation.low_confidence_turns} low-confidence turns")
        intent = assistant.intent(result.intent)
        if intent is None:
            return Turn(
                OUT_OF_SCOPE,
                result.confidence,
                result.path,
                "out_of_scope",
                assistant.out_of_scope.reply.say(lang),
            )
        action = intent.action
        if action.type == "handoff":
            raise _Escalate(f"intent {intent.name}")
        if action.type == "reply":
            assert action.text is not None  # the file's schema requires it
            return Turn(intent.name, result.confidence, result.path, "reply", action.text)
        if action.type == "slots":
            return await self._slots(assistant, session, intent, text, result, lang, False)
        return await self._answer(assistant, session, intent, text, result, lang)

    async def _slots(
        self,
        assistant: Assistant,
        session: SupportSession,
        intent: Intent,
        text: str,
        result: Classification,
        lang: str,
        asked: bool,
    ) -> Turn:
        """Take the slots ``text`` gives; ask for the next one, or call the webhook."""
        found = _slot_values(intent, text)
        missing = [name for name in intent.action.slots if name not in session.slots]
        if asked and missing and not found and intent.action.slots[missing[0]].pattern is None:
            found[missing[0]] = text.strip()  # a free-text slot takes the whole answer
        if session.pending != intent.name:
            session.slots = {}
        session.slots.update(found)
        missing = [name for name in intent.action.slots if name not in session.slots]
        confidence = 1.0 if asked and found else result.confidence
        shown = (intent.name, confidence, "slot" if asked else result.path)
        if asked and not found and missing:
            name = missing[0]
            slot = intent.action.slots[name]
            say = assistant.messages.invalid_slot.say(lang)
            value = text.strip()[:40]
            return Turn(*shown, "invalid_slot", say.format(value=value, slot=name, ask=slot.ask))
        if missing:
            session.pending = intent.name
            return Turn(*shown, "ask_slot", intent.action.slots[missing[0]].ask)
        session.pending = None
        slots, session.slots = dict(session.slots), {}
        if intent.action.webhook is None:
            return Turn(*shown, "reply", _fill(intent.action.text, slots) or str(slots))
        try:
            answer = await call_webhook(
                intent.action.webhook, {"intent": intent.name, **slots}, self.settings
            )
        except WebhookError as exc:
            log.warning("support/%s webhook failed: %s", assistant.name, exc.message)
            return Turn(*shown, "webhook_failed", assistant.messages.action_failed.say(lang))
        values = {**slots, **{k: v for k, v in answer.items() if isinstance(k, str)}}
        reply = _fill(intent.action.text, values)
        if reply is None:
            summary = ", ".join(f"{k}: {v}" for k, v in answer.items())
            reply = assistant.messages.action_done.say(lang).format(result=summary)
        return Turn(*shown, "webhook", reply)

    async def _answer(
        self,
        assistant: Assistant,
        session: SupportSession,
        intent: Intent,
        text: str,
        result: Classification,
        lang: str,
    ) -> Turn:
        """Ground the model in the relevant passages, or say it does not know."""
        shown = (intent.name, result.confidence, result.path)
        bases = intent.action.knowledge_bases or assistant.knowledge_bases
        knowledge = self._knowledge()
        hits: list[Hit] = []
        if bases and knowledge is not None:
            gloss = self.recognizer.model_for(assistant).choice.gloss
            hits = await asyncio.to_thread(self._search, assistant, knowledge, bases, text, gloss)
        if not hits:
            return Turn(*shown, "unknown", assistant.out_of_scope.reply.say(lang))
        history = (
            session.transcript[-2 * self.settings.history_turns :]
            if (self.settings.history_turns)
            else []
        )
        messages = inject_context(
            [
                {"role": "system", "content": assistant.persona},
                *history,
                {"role": "user", "content": text},
            ],
            hits,
        )
        snippet = knowledge.settings.snippet_chars if knowledge is not None else 240
        return Turn(*shown, "answer", messages=messages, citations=citations_of(hits, snippet))

    def _search(
        self,
        assistant: Assistant,
        knowledge: KnowledgeService,
        bases: list[str],
        text: str,
        gloss: bool,
    ) -> list[Hit]:
        """The relevant passages of the question (one worker-thread hop for both steps)."""
        # The assistant's own knowledge bases: whoever may talk to it reads them
        # through it, as the operator configured (docs/support.md).
        try:
            hits = knowledge.search(bases, text, self.settings.passages)
        except NotFoundError as exc:  # a base the file names was dropped: say so in logs
            log.warning("support/%s: %s", assistant.name, exc.message)
            return []
        return self.relevance.relevant(text, hits, gloss=gloss)


def _slot_values(intent: Intent, text: str) -> dict[str, str]:
    """The slots of ``intent`` that ``text`` holds a valid value for."""
    found = {}
    for name, slot in intent.action.slots.items():
        if slot.pattern is None:
            continue
        match = re.search(slot.pattern, text)
        if match:
            found[name] = match.group(0)
    return found


def _fill(template: str | None, values: dict[str, Any]) -> str | None:
    """``template`` with ``{field}`` placeholders filled; None if one is missing."""
    if template is None:
        return None
    try:
        return template.format_map(values)
    except (KeyError, IndexError, ValueError):
        return None
