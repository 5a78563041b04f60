"""One chat request made ready for an engine: prompt, grammar, and how to read the output.

:func:`prepare_chat` is the single entry point the embedded engine and the API
use: it checks ``tools``/``tool_choice``/``response_format`` together, decides
thinking, renders the template, and returns what sampling and parsing need.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from luodi.chat.isolation import isolated, replaced, split_isolated
from luodi.chat.output import ChatOutputParser
from luodi.chat.structured import (
    response_format_grammar,
    response_format_schema,
    validate_json_output,
)
from luodi.chat.templates import (
    ChatTemplate,
    Message,
    normalize_messages,
    prompt_opens_thinking,
)
from luodi.chat.thinking import thinking_enabled
from luodi.chat.tool_calls import new_call_id
from luodi.chat.tool_choice import ToolPolicy, resolve_tool_choice, tool_choice_grammar
from luodi.errors import InvalidRequestError

__all__ = ["PreparedChat", "prepare_chat"]


@dataclass(frozen=True)
class PreparedChat:
    """What an engine needs to run one chat request."""

    prompt: str
    """The rendered prompt text (special tokens as text: tokenize with ``special=True``)."""
    grammar: str | None
    """The llguidance grammar to sample with (JSON form, or Lark for tool calls), or ``None``."""
    thinking: bool
    """Whether the answer is expected to open with reasoning."""
    started_thinking: bool
    """Whether the prompt already opened ``<think>``."""
    tools: ToolPolicy
    schema: dict[str, Any] | None
    """The JSON schema the content must match (``response_format``), or ``None``."""
    plain_spans: tuple[tuple[int, int], ...] = ()
    """[start, end) spans of ``prompt`` holding client text that spells control tokens:
    tokenize them without parsing special tokens (isolation.py)."""
    reference_prompt: str | None = None
    """With ``plain_spans``: the prompt rendered with that text replaced, whose control
    tokens the isolated prompt's must equal, or the isolation did not hold."""

    def output_parser(self, *, new_id: Callable[[], str] = new_call_id) -> ChatOutputParser:
        """A fresh parser for one choice of this request."""
        return ChatOutputParser(
            thinking=self.thinking,
            started=self.started_thinking,
            tools=list(self.tools.tools),
            parse_tool_calls=self.tools.parse_calls,
            new_id=new_id,
        )

    def validate(self, content: str | None) -> list[str]:
        """Problems of ``content`` against ``response_format``; empty when none asked or valid."""
        if self.schema is None:
            return []
        return validate_json_output(content or "", self.schema)


def prepare_chat(
    template: ChatTemplate,
    messages: Sequence[Message],
    *,
    tools: Sequence[Mapping[str, Any]] | None = None,
    tool_choice: str | Mapping[str, Any] | None = None,
    response_format: Mapping[str, Any] | None = None,
    chat_template_kwargs: Mapping[str, Any] | None = None,
    add_generation_prompt: bool = True,
    isolate: Callable[[str], bool] | None = None,
) -> PreparedChat:
    """Check a chat request's options and render its prompt.

    When a grammar is enforced (``response_format`` json, ``tool_choice`` required
    or named) on a template that can think, thinking is turned off
    (``enable_thinking=False``): the grammar applies from the first token, so a
    ``<think>`` block could not be written.

    Raises:
        InvalidRequestError: invalid tools, tool_choice, response_format or
            chat_template_kwargs, both a JSON response_format and a forced tool
            call, or messages the template rejects.

    ``isolate`` says which client strings spell the model's control tokens; those are
    marked so the engine tokenizes them as plain text (isolation.py).
    """
    policy = resolve_tool_choice(tools, tool_choice)
    schema = response_format_schema(response_format)
    if schema is not None and policy.forced:
        raise InvalidRequestError(
            "response_format json and a forced tool_choice cannot be combined",
            param="response_format",
        )
    grammar = tool_choice_grammar(tools, tool_choice) if policy.forced else None
    if schema is not None:
        grammar = response_format_grammar(response_format)
    kwargs = dict(chat_template_kwargs or {})
    thinking = thinking_enabled(messages, kwargs, template.family)
    if grammar is not None and template.family == "qwen3":
        kwargs["enable_thinking"] = False
        thinking = False

    def render(msgs: Sequence[Message]) -> str:
        return template.render(
            msgs, tools=policy.prompt_tools, add_generation_prompt=add_generation_prompt, **kwargs
        )

    spans: list[tuple[int, int]] = []
    reference = None
    prompt = None
    if isolate is not None:
        normalized = normalize_messages(messages)
        marked, found = isolated(normalized, isolate)
        if found:
            prompt, spans = split_isolated(render(marked))
            reference = render(replaced(normalized, isolate))
    if prompt is None:
        prompt = render(messages)
    started = add_generation_prompt and prompt_opens_thinking(prompt)
    return PreparedChat(
        prompt=prompt,
        grammar=grammar,
        thinking=thinking or started,
        started_thinking=started,
        tools=policy,
        schema=schema,
        plain_spans=tuple(spans),
        reference_prompt=reference,
    )
