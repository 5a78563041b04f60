"""Whether a request thinks: Qwen3's ``enable_thinking`` and its ``/think`` soft switches.

Qwen3 documents two controls. ``enable_thinking`` (passed, as vLLM accepts it, in
``chat_template_kwargs``) is a hard switch: when false the template itself closes
an empty ``<think>`` block and the model cannot think. When it is true (the
default), the user may write ``/think`` or ``/no_think`` in a turn; the model
follows the latest one. The switches are left in the prompt (the model was trained
on them); this module only predicts their effect, so the output parsers know
whether a missing ``</think>`` means "all reasoning".
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from luodi.chat.templates import Message, TemplateFamily
from luodi.errors import InvalidRequestError

__all__ = ["enable_thinking_kwarg", "soft_switch", "thinking_enabled"]

# "/think" or "/no_think" as a word of its own: not "/thinking", not "a/think".
_SWITCH = re.compile(r"(?<![\w/])/(no_think|think)(?![\w/])")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, Mapping) and "text" in p
        )
    return ""


def soft_switch(messages: Sequence[Message]) -> bool | None:
    """The last ``/think`` (True) or ``/no_think`` (False) in the latest user turn.

    Returns:
        ``None`` when the latest user message carries neither switch.
    """
    for message in reversed(messages):
        if message.get("role") == "user":
            found = _SWITCH.findall(_text(message.get("content")))
            if not found:
                return None
            return bool(found[-1] == "think")
    return None


def enable_thinking_kwarg(chat_template_kwargs: Mapping[str, Any] | None) -> bool | None:
    """The request's ``chat_template_kwargs.enable_thinking``, checked.

    Raises:
        InvalidRequestError: it is set to something other than a boolean.
    """
    if not chat_template_kwargs or "enable_thinking" not in chat_template_kwargs:
        return None
    value = chat_template_kwargs["enable_thinking"]
    if value is None:
        return None
    if not isinstance(value, bool):
        raise InvalidRequestError(
            "chat_template_kwargs.enable_thinking must be true or false",
            param="chat_template_kwargs.enable_thinking",
        )
    return value


def thinking_enabled(
    messages: Sequence[Message],
    chat_template_kwargs: Mapping[str, Any] | None,
    family: TemplateFamily,
) -> bool:
    """Whether the model is expected to open with a ``<think>`` block.

    ``enable_thinking=False`` wins over everything (the template closes the block);
    otherwise the latest soft switch decides; otherwise ``enable_thinking`` if it is
    given, else the family's default (on for Qwen3, off for the others).
    """
    kwarg = enable_thinking_kwarg(chat_template_kwargs)
    if kwarg is False:
        return False
    switch = soft_switch(messages)
    if switch is not None:
        return switch
    if kwarg is not None:
        return kwarg
    return family == "qwen3"
