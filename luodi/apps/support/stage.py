"""Assist: the pipeline stage that turns a chat with ``support/<name>`` into the assistant's turn.

It runs right after Authorize (the principal may invoke ``model:support/<name>``), so
everything after it applies to the turn as to any chat: Protect masks the messages it
built (persona, passages, history, the user's words) before the model sees them,
Route plans them on the assistant's model, Limit charges the tokens, Restore puts the
pseudonyms back in the answer and Audit writes the record, with the turn's intent,
confidence, path, action and latency in its reason. It reads the user's own words
before Protect: slot values (an order number) and intents are taken from what the user
wrote, and the webhook the operator configured receives them as written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from luodi.api.pipeline import ChatWork, Exchange
from luodi.apps.support.conductor import Turn
from luodi.apps.support.engines import GroundedAnswer, ScriptedReply
from luodi.apps.support.lexical import language_of
from luodi.apps.support.service import MODEL_PREFIX, SupportService
from luodi.errors import InvalidRequestError
from luodi.knowledge.grounding import last_user_text

__all__ = ["Assist"]


class Assist:
    """Runs the assistant's turn for ``support/<name>`` models; other models pass untouched."""

    name = "assist"

    def __init__(self, support: Callable[[], SupportService]) -> None:
        self._support = support

    async def run(self, exchange: Exchange) -> None:
        if not exchange.model.startswith(MODEL_PREFIX):
            return
        support = self._support()
        assistant = support.assistant(exchange.model.removeprefix(MODEL_PREFIX))
        work = exchange.work
        if not isinstance(work, ChatWork):
            raise InvalidRequestError(
                f"{exchange.model} is an assistant: use /v1/chat/completions", param="model"
            )
        text = last_user_text(work.messages).strip()
        if not text:
            raise InvalidRequestError("the last user message is empty", param="messages")
        tenant = exchange.principal.tenant or "default"
        conversation = (
            f"{tenant}:{work.conversation}" if work.conversation else exchange.conversation_id
        )
        support.warm_soon(assistant)
        turn = await support.conductor.turn(assistant, conversation, tenant, text)
        exchange.notes.append(turn.note(assistant.name))
        # The assistant chooses passages, tools and format; the client's would bypass it.
        work.kb = []
        work.options = {k: v for k, v in work.options.items() if k == "chat_template_kwargs"}
        if turn.handoff is not None:
            await support.announce_handoff(exchange.principal, assistant, turn, exchange.source_ip)
        if turn.reply is not None:
            exchange.engine = ScriptedReply(exchange.model, turn.reply)
            return
        _, base = await support.base_engine(assistant)
        work.messages = turn.messages
        if work.params.max_tokens is None:
            work.params.max_tokens = assistant.max_answer_tokens
        exchange.citations = [dataclasses.asdict(c) for c in turn.citations]
        session = turn.session

        async def remember(answer: str) -> None:
            if session is not None:
                await support.conductor.remember_answer(session, answer)

        exchange.engine = GroundedAnswer(base, _sources(turn, text), remember)


def _sources(turn: Turn, text: str) -> str:
    """The answer's numbered sources, as the passages were numbered in the prompt."""
    if not turn.citations:
        return ""
    label = "参考资料" if language_of(text) == "zh" else "Sources"
    listed = "; ".join(f"[{c.index}] {c.document}" for c in turn.citations)
    return f"\n\n{label}: {listed}"
