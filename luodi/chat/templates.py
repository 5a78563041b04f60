"""Chat templates: OpenAI-style messages in, the prompt text the model was trained on out.

A template comes from the model itself (the GGUF ``tokenizer.chat_template``
metadata), from a file, or from a template shipped with luodi (``qwen3``,
``chatml``, ``gemma3``). It always runs in a sandbox: a GGUF is input luodi does not
control, and its template must not reach the host.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Protocol

from jinja2 import Template, TemplateError, TemplateSyntaxError

from luodi.chat._jinja import TemplateRaisedError, make_environment
from luodi.errors import ConfigError, InvalidRequestError

__all__ = [
    "BUILTIN_TEMPLATES",
    "ChatTemplate",
    "Message",
    "TemplateFamily",
    "TemplateSource",
    "detect_family",
    "normalize_messages",
    "prompt_opens_thinking",
]

Message = Mapping[str, Any]
"""One OpenAI chat message as a plain mapping (``role``, ``content``, ``tool_calls``, ...)."""

TemplateFamily = Literal["qwen3", "hermes", "generic"]
"""Which output conventions a template implies, so the right parsers are chosen.

``qwen3``: ``<think>`` reasoning and Hermes-style ``<tool_call>`` blocks.
``hermes``: ``<tool_call>`` blocks, no reasoning switch (Qwen2.5, Hermes 2/3).
``generic``: neither is announced by the template.
"""

BUILTIN_TEMPLATES: tuple[str, ...] = ("chatml", "gemma3", "qwen3")
"""Names accepted by :meth:`ChatTemplate.builtin`."""

# The built-in template for a GGUF architecture (general.architecture) that carries none.
_ARCHITECTURE_TEMPLATES: Mapping[str, str] = {
    "gemma3": "gemma3",
    "qwen3": "qwen3",
    "qwen3moe": "qwen3",
}

# Keys a request's chat_template_kwargs may not override: luodi sets them itself.
_RESERVED_KWARGS = frozenset(
    {"messages", "tools", "add_generation_prompt", "bos_token", "eos_token"}
)


class TemplateSource(Protocol):
    """What a loaded model says about its prompt format; the engine's ``TemplateMetadata``.

    The engine reads these from the model and its settings but never renders a prompt:
    :meth:`ChatTemplate.for_model` turns them into a template, so the engine core does not
    import ``luodi.chat``.
    """

    @property
    def configured(self) -> str | None:
        """``engine.chat_template``: a built-in name or a template file, or ``None``."""
        ...

    @property
    def gguf_template(self) -> str | None:
        """The model's own ``tokenizer.chat_template``, if it carries one."""
        ...

    @property
    def architecture(self) -> str | None:
        """The GGUF's ``general.architecture`` (``gemma3``, ``qwen3``, ...)."""
        ...

    @property
    def bos_token(self) -> str:
        """The model's BOS token text (templates may print it)."""
        ...

    @property
    def eos_token(self) -> str:
        """The model's EOS token text."""
        ...


def detect_family(template: str) -> TemplateFamily:
    """Guess a template's output conventions from its source text.

    Args:
        template: The Jinja source of a chat template.

    Returns:
        ``"qwen3"`` when it both renders ``<tool_call>`` blocks and handles
        ``<think>``/``enable_thinking``; ``"hermes"`` when it renders ``<tool_call>``
        blocks only; ``"generic"`` otherwise.
    """
    has_tool_call = "<tool_call>" in template
    has_thinking = "</think>" in template or "enable_thinking" in template
    if has_tool_call and has_thinking:
        return "qwen3"
    if has_tool_call:
        return "hermes"
    return "generic"


def _flatten_content(content: Any, index: int) -> str:
    """OpenAI content (a string, a list of text parts, or null) as one string."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        texts: list[str] = []
        for part in content:
            if isinstance(part, Mapping) and part.get("type") == "text":
                texts.append(str(part.get("text", "")))
            else:
                kind = part.get("type") if isinstance(part, Mapping) else type(part).__name__
                raise InvalidRequestError(
                    f"messages[{index}].content: only text parts are supported, got {kind!r}",
                    param=f"messages[{index}].content",
                )
        return "\n".join(texts)
    raise InvalidRequestError(
        f"messages[{index}].content must be a string or a list of text parts",
        param=f"messages[{index}].content",
    )


def _normalize_tool_call(call: Any, index: int) -> dict[str, Any]:
    if not isinstance(call, Mapping):
        raise InvalidRequestError(
            f"messages[{index}].tool_calls entries must be objects",
            param=f"messages[{index}].tool_calls",
        )
    out = dict(call)
    function = call.get("function")
    if isinstance(function, Mapping):
        function = dict(function)
        arguments = function.get("arguments")
        # OpenAI sends arguments as a JSON string; most templates expect an object and
        # would double-encode a string with tojson. Qwen3's accepts both.
        if isinstance(arguments, str):
            try:
                parsed = json.loads(arguments)
            except json.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                function["arguments"] = parsed
        out["function"] = function
    return out


def normalize_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """Messages as templates expect them: string content, tool-call arguments as objects.

    Text-part lists are joined with newlines (templates such as Qwen3's concatenate
    ``content`` as a string); ``null`` content (an assistant turn with only tool
    calls) becomes ``""``.

    Raises:
        InvalidRequestError: a message is not an object, has no role, or carries
            non-text content.
    """
    out: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        if not isinstance(message, Mapping) or not isinstance(message.get("role"), str):
            raise InvalidRequestError(
                f"messages[{index}] must be an object with a string 'role'",
                param=f"messages[{index}]",
            )
        item = {k: v for k, v in message.items() if v is not None}
        item["content"] = _flatten_content(message.get("content"), index)
        if message.get("tool_calls"):
            item["tool_calls"] = [_normalize_tool_call(c, index) for c in message["tool_calls"]]
        out.append(item)
    return out


def _read_builtin(name: str) -> str:
    resource = resources.files("luodi.chat") / "builtin_templates" / f"{name}.jinja"
    return resource.read_text(encoding="utf-8")


class ChatTemplate:
    """A compiled, sandboxed chat template.

    Build one with :meth:`from_gguf`, :meth:`from_file`, :meth:`builtin` or
    :meth:`resolve`; render a request with :meth:`render`. Instances are immutable
    and safe to share between threads.
    """

    def __init__(
        self,
        source: str,
        *,
        bos_token: str = "",
        eos_token: str = "",
        name: str = "custom",
    ) -> None:
        """Compile ``source``.

        Raises:
            ConfigError: the template does not compile; the message names it.
        """
        self.source = source
        self.bos_token = bos_token
        self.eos_token = eos_token
        self.name = name
        self.family: TemplateFamily = detect_family(source)
        try:
            self._template: Template = make_environment().from_string(source)
        except TemplateSyntaxError as exc:
            raise ConfigError(
                f"chat template {name!r} does not compile: {exc.message} (line {exc.lineno})"
            ) from exc

    @classmethod
    def from_gguf(cls, template: str, *, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
        """The template a GGUF carries in ``tokenizer.chat_template``."""
        return cls(template, bos_token=bos_token, eos_token=eos_token, name="gguf")

    @classmethod
    def from_file(cls, path: Path, *, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
        """A Jinja template file.

        Raises:
            ConfigError: the file cannot be read or does not compile.
        """
        try:
            source = Path(path).expanduser().read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read chat template file {path}: {exc}") from exc
        return cls(source, bos_token=bos_token, eos_token=eos_token, name=str(path))

    @classmethod
    def builtin(cls, name: str, *, bos_token: str = "", eos_token: str = "") -> ChatTemplate:
        """A template shipped with luodi, by name (see :data:`BUILTIN_TEMPLATES`).

        Raises:
            ConfigError: no built-in template has that name.
        """
        if name not in BUILTIN_TEMPLATES:
            raise ConfigError(
                f"unknown chat template {name!r}; built-in ones are {', '.join(BUILTIN_TEMPLATES)}"
            )
        return cls(_read_builtin(name), bos_token=bos_token, eos_token=eos_token, name=name)

    @classmethod
    def resolve(
        cls,
        configured: str | None,
        gguf_template: str | None,
        *,
        architecture: str | None = None,
        bos_token: str = "",
        eos_token: str = "",
    ) -> ChatTemplate:
        """The template to serve a model with.

        Args:
            configured: A built-in name or a file path from config, or ``None``.
            gguf_template: The model's own ``tokenizer.chat_template``, if any.
            architecture: The model's architecture, for a built-in template when the
                GGUF carries none (``gemma3``, ``qwen3``, ``qwen3moe``).
            bos_token: The model's BOS token text (templates may print it).
            eos_token: The model's EOS token text.

        Returns:
            The configured template when one is set, else the model's own, else the
            built-in one for its architecture, else ``chatml``.

        Raises:
            ConfigError: the configured template is unknown, unreadable or does not
                compile.
        """
        tokens = {"bos_token": bos_token, "eos_token": eos_token}
        if configured:
            if configured in BUILTIN_TEMPLATES:
                return cls.builtin(configured, **tokens)
            return cls.from_file(Path(configured), **tokens)
        if gguf_template:
            return cls.from_gguf(gguf_template, **tokens)
        return cls.builtin(_ARCHITECTURE_TEMPLATES.get(architecture or "", "chatml"), **tokens)

    @classmethod
    def for_model(cls, source: TemplateSource) -> ChatTemplate:
        """The template a loaded model is served with (see :meth:`resolve`), compiled once.

        Every chat request asks for it, so the compiled template is cached by the
        metadata's values; an engine's metadata does not change while it runs.

        Raises:
            ConfigError: the configured template is unknown, unreadable or does not
                compile.
        """
        return _resolve_cached(
            source.configured,
            source.gguf_template,
            source.architecture,
            source.bos_token,
            source.eos_token,
        )

    def render(
        self,
        messages: Sequence[Message],
        *,
        tools: Sequence[Mapping[str, Any]] | None = None,
        add_generation_prompt: bool = True,
        **kwargs: Any,
    ) -> str:
        """Render a conversation to prompt text.

        Args:
            messages: OpenAI-style messages; see :func:`normalize_messages`.
            tools: OpenAI ``tools`` entries, passed to the template as ``tools``.
            add_generation_prompt: Open an assistant turn at the end.
            **kwargs: Extra template variables, e.g. ``enable_thinking=False``
                (a request's ``chat_template_kwargs``).

        Returns:
            The prompt text, special tokens included as text.

        Raises:
            InvalidRequestError: the messages break the template's rules (its
                ``raise_exception``), or the template fails on them; never a 500.
        """
        if not messages:
            raise InvalidRequestError("messages must not be empty", param="messages")
        reserved = sorted(_RESERVED_KWARGS.intersection(kwargs))
        if reserved:
            raise InvalidRequestError(
                f"chat_template_kwargs may not set {', '.join(reserved)}",
                param="chat_template_kwargs",
            )
        context: dict[str, Any] = {
            **kwargs,
            "messages": normalize_messages(messages),
            "tools": [dict(t) for t in tools] if tools else None,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        try:
            return self._template.render(context)
        except TemplateRaisedError as exc:
            raise InvalidRequestError(
                f"the chat template rejected these messages: {exc.message}", param="messages"
            ) from exc
        except (TemplateError, TypeError, ValueError, AttributeError, IndexError, KeyError) as exc:
            # A template bug or messages it cannot handle: the request's problem to fix.
            detail = getattr(exc, "message", None) or str(exc)
            raise InvalidRequestError(
                f"the chat template {self.name!r} could not render these messages: {detail}",
                param="messages",
            ) from exc


@functools.lru_cache(maxsize=16)
def _resolve_cached(
    configured: str | None,
    gguf_template: str | None,
    architecture: str | None,
    bos_token: str,
    eos_token: str,
) -> ChatTemplate:
    return ChatTemplate.resolve(
        configured,
        gguf_template,
        architecture=architecture,
        bos_token=bos_token,
        eos_token=eos_token,
    )


_OPEN_THINK_AT_END = re.compile(r"<think>\s*$")


def prompt_opens_thinking(prompt: str) -> bool:
    """Whether the rendered prompt ends inside an opened ``<think>`` block.

    Some templates (QwQ, DeepSeek-R1) open the block themselves, so the model's
    output starts with reasoning and only carries the closing ``</think>``.
    """
    return _OPEN_THINK_AT_END.search(prompt) is not None
