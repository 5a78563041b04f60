"""The gateway stage: policies, blocking, fail-closed, concurrency, restoration."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from luodi.config.privacy import CustomRuleSettings, PolicySettings, PrivacySettings
from luodi.errors import ConfigError, PermissionDeniedError, ServiceUnavailableError
from luodi.privacy import Finding, PIIStage
from luodi.privacy.errors import PIIBlockedError

from .conftest import make_settings, make_stage


def chat() -> list[dict[str, object]]:
    return [
        {"role": "system", "content": "你是银行客服。"},
        {"role": "user", "content": "我叫王磊，手机13812345678"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {
                        "name": "lookup",
                        "arguments": json.dumps({"phone": "13812345678", "name": "王磊"}),
                    },
                }
            ],
        },
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": "王磊 余额 100 元，邮箱 wl@example.com",
        },
        {"role": "user", "content": [{"type": "text", "text": "再打一次13812345678"}]},
    ]


async def test_every_text_field_of_a_chat_is_pseudonymized_consistently() -> None:
    stage = make_stage()
    original = chat()
    protected = await stage.protect_messages(original, policy=None, conversation_id="c1")
    m = protected.messages
    assert m is not None
    assert m[1]["content"] == "我叫<PERSON_1>，手机<PHONE_1>"
    args = json.loads(m[2]["tool_calls"][0]["function"]["arguments"])  # type: ignore[index]
    assert args == {"phone": "<PHONE_1>", "name": "<PERSON_1>"}
    assert m[3]["content"] == "<PERSON_1> 余额 100 元，邮箱 <EMAIL_1>"  # wl@x.com
    assert m[4]["content"] == [{"type": "text", "text": "再打一次<PHONE_1>"}]
    assert protected.findings == {"PERSON": 3, "PHONE": 3, "EMAIL": 1}
    assert original == chat()  # the caller's messages are untouched


async def test_answer_and_tool_calls_coming_back_are_restored() -> None:
    stage = make_stage()
    protected = await stage.protect_messages(chat(), policy=None, conversation_id="c1")
    assert protected.restore("已为<PERSON_1>回拨<PHONE_1>") == "已为王磊回拨13812345678"
    calls = protected.restore_tool_calls(
        [{"id": "x", "function": {"name": "sms", "arguments": '{"to": "<PHONE_1>"}'}}]
    )
    assert json.loads(calls[0]["function"]["arguments"]) == {"to": "13812345678"}
    r = protected.restorer()
    streamed = r.feed("已为<PER") + r.feed("SON_1>回拨<PHONE_") + r.feed("1>") + r.flush()
    assert streamed == "已为王磊回拨13812345678"


async def test_a_blocked_entity_refuses_the_request_with_403_pii_blocked() -> None:
    stage = make_stage(block=["ID_CARD"])
    with pytest.raises(PIIBlockedError) as info:
        await stage.protect_text("身份证11010519491231002X", policy=None, conversation_id="c")
    err = info.value
    assert isinstance(err, PermissionDeniedError)
    assert err.status_code == 403 and err.code == "pii_blocked"
    assert "ID_CARD" in err.message and "11010519491231002X" not in err.message


class GateRecognizer:
    """Blocks inside detection until released: a detector slower than its budget."""

    name = "gate"
    entity_types = ("PHONE",)

    def __init__(self) -> None:
        self.release = threading.Event()

    def find(self, text: str) -> list[Finding]:
        self.release.wait(timeout=10)
        return []


class BrokenRecognizer:
    name = "broken"
    entity_types = ("PHONE",)

    def find(self, text: str) -> list[Finding]:
        raise RuntimeError("model file vanished")


async def test_detection_past_its_budget_fails_closed_with_503_naming_the_stage() -> None:
    stage = make_stage(timeout_ms=20)
    gate = GateRecognizer()
    stage.analyzer.registry.add(gate)
    try:
        with pytest.raises(ServiceUnavailableError) as info:
            await stage.protect_text("手机13812345678", policy=None, conversation_id="c")
    finally:
        gate.release.set()
    assert info.value.status_code == 503
    assert info.value.message.startswith("pii:")


async def test_a_detector_error_fails_closed_instead_of_passing_text_through() -> None:
    stage = make_stage()
    stage.analyzer.registry.add(BrokenRecognizer())
    with pytest.raises(ServiceUnavailableError, match=r"^pii: detection failed"):
        await stage.protect_messages(
            [{"role": "user", "content": "13812345678"}], policy=None, conversation_id="c"
        )


async def test_parallel_conversations_never_see_each_others_values() -> None:
    # Isolation, not speed: a budget that CPU contention in CI cannot trip.
    stage = make_stage(timeout_ms=30_000)

    async def one(i: int) -> tuple[int, str]:
        phone = f"139{i:08d}"
        protected = await stage.protect_messages(
            [{"role": "user", "content": f"请回电{phone}，邮箱u{i}@example.com"}],
            policy=None,
            conversation_id=f"conv-{i}",
        )
        assert protected.messages is not None
        masked = protected.messages[0]["content"]
        assert masked == "请回电<PHONE_1>，邮箱<EMAIL_1>"
        return i, protected.restore("<PHONE_1> <EMAIL_1>")

    results = await asyncio.gather(*(one(i) for i in range(200)))
    for i, restored in results:
        assert restored == f"139{i:08d} u{i}@example.com"


async def test_same_conversation_keeps_tags_across_turns() -> None:
    stage = make_stage()
    first = await stage.protect_text("手机13812345678", policy=None, conversation_id="c")
    second = await stage.protect_text(
        "另一个13987654321，还有13812345678", policy=None, conversation_id="c"
    )
    assert first.text == "手机<PHONE_1>"
    assert second.text == "另一个<PHONE_2>，还有<PHONE_1>"


async def test_output_direction_masks_what_the_model_itself_writes() -> None:
    stage = make_stage(direction="both")
    protected = await stage.protect_text("我是王磊", policy=None, conversation_id="c")
    r = protected.restorer()
    chunks = ["<PERSON_1>您好，", "李娜的手机是1398", "7654321。"]
    out = "".join(r.feed(c) for c in chunks) + r.flush()
    assert out == "王磊您好，<PERSON>的手机是<PHONE>。"
    assert r.output_findings == {"PERSON": 1, "PHONE": 1}


async def test_input_only_policy_leaves_model_output_unmasked() -> None:
    stage = make_stage(direction="input")
    protected = await stage.protect_text("你好", policy=None, conversation_id="c")
    assert protected.restore("手机13987654321") == "手机13987654321"


async def test_residency_force_pseudonymizes_entities_the_key_policy_ignores() -> None:
    settings = PrivacySettings(
        policies={
            "default": PolicySettings(),
            "lenient": PolicySettings(entities=["EMAIL"], default_operator="mask"),
        }
    )
    stage = PIIStage.from_settings(settings)
    text = "手机13812345678 邮箱wl@example.com"
    own = await stage.protect_text(text, policy="lenient", conversation_id="c")
    forced = await stage.protect_text(text, policy="lenient", conversation_id="c", force=True)
    assert own.text == "手机13812345678 邮箱wl@*******.com"
    assert forced.text == "手机<PHONE_1> 邮箱wl@*******.com"
    assert forced.restore("<PHONE_1>") == "13812345678"


async def test_disabled_stage_passes_text_unless_forced() -> None:
    stage = make_stage(enabled=False)
    off = await stage.protect_text("手机13812345678", policy=None, conversation_id="c")
    forced = await stage.protect_text(
        "手机13812345678", policy=None, conversation_id="c", force=True
    )
    assert off.text == "手机13812345678"
    assert forced.text == "手机<PHONE_1>"


async def test_unknown_policy_name_fails_closed() -> None:
    with pytest.raises(ServiceUnavailableError, match="unknown PII policy"):
        await make_stage().protect_text("x", policy="nope", conversation_id="c")


async def test_custom_rule_is_hot_reloaded_and_a_bad_regex_keeps_the_old_rules() -> None:
    stage = make_stage()
    text = "员工编号 EMP-004211 已入职"
    before = await stage.protect_text(text, policy=None, conversation_id="c")
    assert before.text == text
    rule = CustomRuleSettings(name="EMPLOYEE_ID", regex=r"EMP-\d{6}", score=0.9)
    new = make_settings(custom_rules=[rule], entities=["EMPLOYEE_ID", "PHONE"])
    stage.reload(new)
    after = await stage.protect_text(text, policy=None, conversation_id="c")
    assert after.text == "员工编号 <EMPLOYEE_ID_1> 已入职"
    bad = CustomRuleSettings.model_construct(name="BROKEN", regex="(unclosed", score=0.5)
    broken = new.model_copy(update={"custom_rules": [rule, bad]})
    with pytest.raises(ConfigError, match="'BROKEN'"):
        stage.reload(broken)
    again = await stage.protect_text(text, policy=None, conversation_id="c")
    assert again.text == after.text


def test_settings_reject_a_bad_regex_naming_the_rule() -> None:
    with pytest.raises(ValueError, match="'CASE_NO'"):
        CustomRuleSettings(name="CASE_NO", regex="[0-9")


async def test_custom_rule_with_validator_only_matches_valid_numbers() -> None:
    rule = CustomRuleSettings(
        name="MEMBER_CARD", regex=r"\bM\d{16}\b", validator="luhn", context=["会员"], score=0.4
    )
    stage = make_stage(custom_rules=[rule], entities=["MEMBER_CARD"], default_operator="redact")
    ok = await stage.protect_text("会员卡 M4111111111111111", policy=None, conversation_id="c")
    bad = await stage.protect_text("会员卡 M4111111111111112", policy=None, conversation_id="c")
    assert ok.text == "会员卡 "
    assert bad.text == "会员卡 M4111111111111112"


async def test_api_anonymize_uses_operator_overrides() -> None:
    stage = make_stage()
    done, counts = await stage.anonymize("手机13812345678", operators={"PHONE": "mask"})
    assert done.text == "手机138****5678"
    assert counts == {"PHONE": 1}


async def test_parallel_requests_of_one_conversation_agree_on_tags() -> None:
    # Isolation, not speed: a budget that CPU contention in CI cannot trip.
    stage = make_stage(timeout_ms=30_000)

    async def one(i: int) -> str:
        protected = await stage.protect_text(
            f"共同号码13812345678，各自号码139{i:08d}", policy=None, conversation_id="shared"
        )
        assert protected.text is not None
        return protected.text

    texts = await asyncio.gather(*(one(i) for i in range(50)))
    assert all(t.startswith("共同号码<PHONE_1>，") for t in texts)
    own_tags = {t.split("各自号码")[1] for t in texts}
    assert len(own_tags) == 50
