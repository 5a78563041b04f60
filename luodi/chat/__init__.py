"""Chat formats shared by every engine: templates, thinking, tool calls, structured output.

Pure functions and small classes, no engine and no HTTP: the embedded llama.cpp
engine and the upstream backends both render prompts and parse answers with them.
The usual entry point is :func:`prepare_chat`, then
:meth:`PreparedChat.output_parser` for each choice.
"""

from luodi.chat.output import ChatDelta, ChatOutputParser, ChatResult
from luodi.chat.reasoning import ReasoningKind, ReasoningParser
from luodi.chat.request import PreparedChat, prepare_chat
from luodi.chat.structured import (
    JSON_OBJECT_SCHEMA,
    check_schema,
    json_object_grammar,
    json_schema_lark,
    json_schema_to_grammar,
    response_format_grammar,
    response_format_schema,
    response_format_strict,
    validate_json_output,
)
from luodi.chat.templates import (
    BUILTIN_TEMPLATES,
    ChatTemplate,
    Message,
    TemplateFamily,
    TemplateSource,
    detect_family,
    normalize_messages,
    prompt_opens_thinking,
)
from luodi.chat.thinking import enable_thinking_kwarg, soft_switch, thinking_enabled
from luodi.chat.tool_calls import ParsedToolOutput, ToolCall, ToolCallParser, new_call_id
from luodi.chat.tool_choice import (
    ToolChoiceMode,
    ToolPolicy,
    resolve_tool_choice,
    tool_choice_grammar,
)

__all__ = [
    "BUILTIN_TEMPLATES",
    "JSON_OBJECT_SCHEMA",
    "ChatDelta",
    "ChatOutputParser",
    "ChatResult",
    "ChatTemplate",
    "Message",
    "ParsedToolOutput",
    "PreparedChat",
    "ReasoningKind",
    "ReasoningParser",
    "TemplateFamily",
    "TemplateSource",
    "ToolCall",
    "ToolCallParser",
    "ToolChoiceMode",
    "ToolPolicy",
    "check_schema",
    "detect_family",
    "enable_thinking_kwarg",
    "json_object_grammar",
    "json_schema_lark",
    "json_schema_to_grammar",
    "new_call_id",
    "normalize_messages",
    "prepare_chat",
    "prompt_opens_thinking",
    "resolve_tool_choice",
    "response_format_grammar",
    "response_format_schema",
    "response_format_strict",
    "soft_switch",
    "thinking_enabled",
    "tool_choice_grammar",
    "validate_json_output",
]
