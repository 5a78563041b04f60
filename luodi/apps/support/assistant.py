"""What an operator configures: one assistant per YAML file (the format in docs/support.md).

The models here are the file's schema: unknown keys are refused, so a typo is an error
naming its line (``loading.py``) rather than a setting silently ignored.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "OUT_OF_SCOPE",
    "Action",
    "Assistant",
    "Escalation",
    "Intent",
    "Messages",
    "OutOfScope",
    "Phrases",
    "Slot",
]

OUT_OF_SCOPE = "out_of_scope"
"""The intent of everything the assistant is not configured for."""

Language = Literal["zh", "en"]
_LANGUAGES: tuple[Language, ...] = ("zh", "en")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_INTENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Slot(_Strict):
    """One value an action needs, asked for until the user gives a valid one."""

    ask: str
    """What the assistant says to ask for it."""
    pattern: str | None = None
    """Regular expression a value must contain (searched in the user's message)."""
    description: str = ""

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"pattern {value!r} is not a regular expression: {exc}") from exc
        return value


class Action(_Strict):
    """What the assistant does for an intent."""

    type: Literal["answer", "slots", "handoff", "reply"] = "answer"
    """answer: from the knowledge bases; slots: collect slots, then call ``webhook``;
    handoff: to a human; reply: the fixed ``text``."""
    slots: dict[str, Slot] = Field(default_factory=dict)
    webhook: str | None = None
    """URL the collected slots are POSTed to as JSON (type ``slots``)."""
    text: str | None = None
    """The fixed reply (type ``reply``), or what is said once a webhook answered
    (``{field}`` placeholders filled from its JSON answer)."""
    knowledge_bases: list[str] | None = None
    """The knowledge bases to answer from; None: the assistant's."""

    @model_validator(mode="after")
    def _complete(self) -> Action:
        if self.type == "slots" and not self.slots:
            raise ValueError("action type 'slots' needs at least one slot under 'slots'")
        if self.type == "reply" and not self.text:
            raise ValueError("action type 'reply' needs 'text'")
        if self.webhook is not None and not self.webhook.startswith(("http://", "https://")):
            raise ValueError(f"webhook {self.webhook!r} must be an http:// or https:// URL")
        return self


class Intent(_Strict):
    """One thing users come for: examples to recognise it by, and the action."""

    name: str
    description: str = ""
    examples: list[str] = Field(min_length=1)
    action: Action = Field(default_factory=Action)

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not _INTENT.match(value):
            raise ValueError(f"intent name {value!r} must be letters, digits and _")
        if value == OUT_OF_SCOPE:
            raise ValueError(f"{OUT_OF_SCOPE!r} is the fallback: configure it under out_of_scope")
        return value

    @field_validator("examples")
    @classmethod
    def _not_blank(cls, value: list[str]) -> list[str]:
        if any(not e.strip() for e in value):
            raise ValueError("an example utterance is empty")
        return value


class Phrases(_Strict):
    """One thing the assistant says, in Chinese and in English (chosen per message)."""

    zh: str
    en: str

    def say(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en


class OutOfScope(_Strict):
    """The fallback: examples of what is out of scope (optional) and the reply."""

    examples: list[str] = Field(default_factory=list)
    reply: Phrases = Phrases(
        zh="抱歉，这个问题我不知道答案。需要为您转接人工客服吗？（回复“转人工”即可）",
        en="Sorry, I don't know the answer to that. Shall I pass you to a human agent? "
        "(reply 'human agent')",
    )


class Escalation(_Strict):
    """When a conversation goes to a human on its own."""

    low_confidence_turns: int = Field(default=2, ge=1)
    """Consecutive turns below ``low_confidence`` that hand the session off."""
    low_confidence: float = Field(default=0.4, ge=0, le=1)
    phrases: list[str] = Field(
        default_factory=lambda: ["转人工", "人工客服", "找人工", "human agent", "real person"]
    )
    """Said anywhere in a message, these hand off at once."""
    webhook: str | None = None
    """URL told of every hand-off (POST, JSON), besides the audit log."""


class Messages(_Strict):
    """What the assistant says in the situations the platform handles itself."""

    handoff: Phrases = Phrases(
        zh="好的，已为您转接人工客服，请稍候，客服人员会尽快回复您。",
        en="OK, I have passed you to a human agent; someone will reply shortly.",
    )
    waiting: Phrases = Phrases(
        zh="您的会话已转人工客服，请稍候。",
        en="Your conversation is with a human agent now; please wait for their reply.",
    )
    invalid_slot: Phrases = Phrases(
        zh="抱歉，“{value}”不是有效的{slot}。{ask}",
        en="Sorry, '{value}' is not a valid {slot}. {ask}",
    )
    action_failed: Phrases = Phrases(
        zh="抱歉，系统暂时无法查询，请稍后再试，或回复“转人工”。",
        en="Sorry, I cannot look that up right now. Please try again later, or reply "
        "'human agent'.",
    )
    action_done: Phrases = Phrases(zh="查询结果：{result}", en="Here is what I found: {result}")


class Assistant(_Strict):
    """One customer-service assistant, served as model ``support/<name>``."""

    name: str
    knowledge_bases: list[str] = Field(default_factory=list)
    intents: list[Intent] = Field(min_length=1)
    persona: str = (
        "你是一名礼貌、简洁的电商客服助手。只根据提供的资料回答，不要编造。"
        "You are a polite, concise e-commerce support assistant; answer only from the "
        "provided passages and never invent facts."
    )
    """The system prompt of every model answer."""
    languages: list[Language] = Field(default_factory=lambda: list(_LANGUAGES))
    model: str | None = None
    """The served model that answers and classifies; None: the first embedded one."""
    latency_budget_ms: int = Field(default=800, ge=50)
    """Time to first token the assistant aims at (reported per turn in the audit)."""
    max_answer_tokens: int = Field(default=160, ge=8, le=4096)
    escalation: Escalation = Field(default_factory=Escalation)
    out_of_scope: OutOfScope = Field(default_factory=OutOfScope)
    messages: Messages = Field(default_factory=Messages)

    @field_validator("name")
    @classmethod
    def _named(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"name {value!r} must be lower-case letters, digits, _ and -")
        return value

    @field_validator("intents")
    @classmethod
    def _unique(cls, value: list[Intent]) -> list[Intent]:
        seen: set[str] = set()
        for intent in value:
            if intent.name in seen:
                raise ValueError(f"intent {intent.name!r} is defined twice")
            seen.add(intent.name)
        return value

    @property
    def model_name(self) -> str:
        """The name clients use: ``support/<name>``."""
        return f"support/{self.name}"

    def intent(self, name: str) -> Intent | None:
        """The intent called ``name`` (None for out_of_scope or an unknown name)."""
        return next((i for i in self.intents if i.name == name), None)
