"""Rendering OpenAI messages with real chat templates, in a sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from luodi.chat import BUILTIN_TEMPLATES, ChatTemplate, detect_family
from luodi.errors import ConfigError, InvalidRequestError
from tests.chat.conftest import CLOCK_TOOL, FIXTURES, WEATHER_TOOL


def test_qwen3_renders_system_and_user_with_generation_prompt(qwen3: ChatTemplate) -> None:
    prompt = qwen3.render(
        [{"role": "system", "content": "你是银行客服。"}, {"role": "user", "content": "你好"}]
    )
    assert prompt == (
        "<|im_start|>system\n你是银行客服。<|im_end|>\n"
        "<|im_start|>user\n你好<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen3_with_thinking_off_closes_an_empty_think_block(qwen3: ChatTemplate) -> None:
    prompt = qwen3.render([{"role": "user", "content": "hi"}], enable_thinking=False)
    assert prompt.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_qwen3_lists_tools_in_the_system_turn(qwen3: ChatTemplate) -> None:
    prompt = qwen3.render(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "北京天气?"}],
        tools=[WEATHER_TOOL, CLOCK_TOOL],
    )
    assert prompt.startswith("<|im_start|>system\nBe brief.\n\n# Tools\n")
    # tojson keeps Chinese readable (ensure_ascii=False), one tool per line.
    assert (
        '\n{"type": "function", "function": {"name": "get_weather", "description": "当前天气"'
        in (prompt)
    )
    assert "<tools>" in prompt and "</tools>" in prompt
    assert '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}' in prompt


def test_qwen3_renders_tool_calls_and_tool_results_back(qwen3: ChatTemplate) -> None:
    messages = [
        {"role": "user", "content": "北京天气?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "北京"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "晴, 25°C"},
        {"role": "tool", "tool_call_id": "call_2", "content": "second"},
    ]
    prompt = qwen3.render(messages, tools=[WEATHER_TOOL])
    assert (
        "<|im_start|>assistant\n<tool_call>\n"
        '{"name": "get_weather", "arguments": {"city": "北京"}}\n</tool_call><|im_end|>\n'
    ) in prompt
    # Consecutive tool results share one user turn.
    assert (
        "<|im_start|>user\n<tool_response>\n晴, 25°C\n</tool_response>"
        "\n<tool_response>\nsecond\n</tool_response><|im_end|>\n"
    ) in prompt


def test_qwen3_drops_reasoning_of_earlier_turns(qwen3: ChatTemplate) -> None:
    messages = [
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "<think>\nadd\n</think>\n\n2"},
        {"role": "user", "content": "2+2?"},
    ]
    prompt = qwen3.render(messages)
    assert "<|im_start|>assistant\n2<|im_end|>" in prompt
    assert "add" not in prompt


@pytest.mark.parametrize(
    "content",
    [
        "hello",
        [{"type": "text", "text": "hello"}],
    ],
    ids=["string", "text-parts"],
)
def test_gemma3_renders_string_or_list_content(gemma3: ChatTemplate, content: object) -> None:
    prompt = gemma3.render(
        [{"role": "system", "content": "Be kind."}, {"role": "user", "content": content}]
    )
    assert (
        prompt == "<bos><start_of_turn>user\nBe kind.\n\nhello<end_of_turn>\n<start_of_turn>model\n"
    )


def test_gemma3_role_rule_becomes_a_400_not_a_500(gemma3: ChatTemplate) -> None:
    with pytest.raises(InvalidRequestError, match="roles must alternate") as info:
        gemma3.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert info.value.status_code == 400


def test_text_parts_are_joined_for_templates_that_concatenate(qwen3: ChatTemplate) -> None:
    parts = [{"type": "text", "text": "line one"}, {"type": "text", "text": "line two"}]
    prompt = qwen3.render([{"role": "user", "content": parts}])
    assert "<|im_start|>user\nline one\nline two<|im_end|>" in prompt


@pytest.mark.parametrize(
    ("messages", "kwargs", "match"),
    [
        ([], {}, "must not be empty"),
        ([{"content": "no role"}], {}, "role"),
        ([{"role": "user", "content": [{"type": "image_url"}]}], {}, "only text parts"),
        ([{"role": "user", "content": "x"}], {"bos_token": "x"}, "may not set bos_token"),
    ],
    ids=["empty", "no-role", "image", "reserved-kwarg"],
)
def test_bad_messages_are_invalid_requests(
    qwen3: ChatTemplate, messages: list[dict[str, object]], kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(InvalidRequestError, match=match):
        qwen3.render(messages, **kwargs)


def test_a_failing_template_is_an_invalid_request_naming_it() -> None:
    template = ChatTemplate("{{ messages[0].content + 1 }}", name="broken")
    with pytest.raises(InvalidRequestError, match="'broken' could not render"):
        template.render([{"role": "user", "content": "x"}])


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ messages.append(1) }}",
        "{{ cycler.__init__.__globals__ }}",
    ],
    ids=["dunder", "mutation", "globals"],
)
def test_templates_cannot_escape_the_sandbox(source: str) -> None:
    with pytest.raises(InvalidRequestError):
        ChatTemplate(source).render([{"role": "user", "content": "x"}])


def test_hf_helpers_are_available() -> None:
    source = (
        "{{ bos_token }}{{ strftime_now('%Y') | length }}{{ {'k': '值'} | tojson(indent=1) }}"
        "{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}{{ m.content }}"
        "{% endfor %}{% generation %}!{% endgeneration %}{{ eos_token }}"
    )
    template = ChatTemplate(source, bos_token="<s>", eos_token="</s>")
    rendered = template.render([{"role": "user", "content": "a"}, {"role": "user", "content": "b"}])
    assert rendered == '<s>4{\n "k": "值"\n}b!</s>'


def test_a_template_that_does_not_compile_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="does not compile"):
        ChatTemplate("{% if %}")


@pytest.mark.parametrize(
    ("name", "family"),
    [("qwen3", "qwen3"), ("gemma3", "generic"), ("chatml", "generic")],
)
def test_builtin_templates_ship_with_their_family(name: str, family: str) -> None:
    template = ChatTemplate.builtin(name, bos_token="<bos>")
    assert name in BUILTIN_TEMPLATES
    assert template.family == family
    assert template.render([{"role": "user", "content": "hi"}])


def test_builtin_qwen3_is_the_public_template() -> None:
    shipped = ChatTemplate.builtin("qwen3").source
    assert shipped == (FIXTURES / "qwen3.jinja").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("source", "family"),
    [
        ("{{ '<tool_call>' }}{% if enable_thinking %}{% endif %}", "qwen3"),
        ("{{ '<tool_call>' }}", "hermes"),
        ("{{ '<start_of_turn>' }}", "generic"),
    ],
)
def test_detect_family(source: str, family: str) -> None:
    assert detect_family(source) == family


@pytest.mark.parametrize(
    ("configured", "gguf", "expected"),
    [
        ("qwen3", "{{ 'gguf' }}", "qwen3"),
        (None, "{{ 'gguf' }}", "gguf"),
        (None, None, "chatml"),
    ],
)
def test_resolve_prefers_config_then_gguf_then_chatml(
    configured: str | None, gguf: str | None, expected: str
) -> None:
    assert ChatTemplate.resolve(configured, gguf).name == expected


def test_resolve_reads_a_template_file(tmp_path: Path) -> None:
    path = tmp_path / "t.jinja"
    path.write_text("{% for m in messages %}[{{ m.content }}]{% endfor %}", encoding="utf-8")
    assert ChatTemplate.resolve(str(path), None).render([{"role": "user", "content": "x"}]) == "[x]"


@pytest.mark.parametrize("configured", ["no-such-template", "/no/such/file.jinja"])
def test_resolve_rejects_unknown_templates(configured: str) -> None:
    with pytest.raises(ConfigError):
        ChatTemplate.resolve(configured, None)


@pytest.mark.parametrize(
    ("architecture", "gguf", "expected"),
    [
        ("gemma3", None, "gemma3"),
        ("qwen3moe", None, "qwen3"),
        ("llama", None, "chatml"),
        ("qwen3", "{{ 'gguf' }}", "gguf"),
    ],
)
def test_resolve_falls_back_to_the_architectures_builtin_when_the_gguf_has_none(
    architecture: str, gguf: str | None, expected: str
) -> None:
    assert ChatTemplate.resolve(None, gguf, architecture=architecture).name == expected


@dataclass(frozen=True)
class _Metadata:
    """Stands in for the engine's TemplateMetadata: chat only needs its shape."""

    configured: str | None = None
    gguf_template: str | None = None
    architecture: str | None = None
    bos_token: str = "<bos>"
    eos_token: str = "<eos>"


def test_for_model_builds_the_template_once_per_model_metadata() -> None:
    first = ChatTemplate.for_model(_Metadata(architecture="qwen3"))
    again = ChatTemplate.for_model(_Metadata(architecture="qwen3"))
    assert first is again
    assert first.name == "qwen3"
    assert first.bos_token == "<bos>"
    assert ChatTemplate.for_model(_Metadata(architecture="gemma3")).name == "gemma3"


def test_for_model_reports_a_missing_configured_template_file() -> None:
    with pytest.raises(ConfigError, match="no/such/file"):
        ChatTemplate.for_model(_Metadata(configured="/no/such/file.jinja"))
