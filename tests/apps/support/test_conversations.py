"""The shop assistant over real HTTP on the real default model: the issue's conversations."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from luodi.engine.llamacpp.engine import LlamaCppEngine
from tests.apps.support.conftest import Desk

pytestmark = pytest.mark.model

MODEL = "support/shop"


async def say(
    http: httpx.AsyncClient, conversation: str, text: str, **extra: Any
) -> dict[str, Any]:
    """One user turn in ``conversation``; returns the response JSON."""
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": text}],
        "temperature": 0,
        "max_tokens": 24,
        **extra,
    }
    response = await http.post(
        "/v1/chat/completions", json=body, headers={"X-Luodi-Conversation": conversation}
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def content(answer: dict[str, Any]) -> str:
    return str(answer["choices"][0]["message"]["content"])


async def test_order_status_asks_for_the_number_validates_it_and_calls_the_webhook(
    desk: Desk,
) -> None:
    async with desk.client() as http:
        asked = content(await say(http, "order-1", "我的快递到哪了"))
        assert "订单号" in asked
        again = content(await say(http, "order-1", "我不记得了，大概是ABC"))
        assert "不是有效的" in again and "订单号" in again
        assert desk.backoffice.orders == []
        done = content(await say(http, "order-1", "订单号 2024112300001234"))
    assert desk.backoffice.orders == [{"intent": "order_status", "order_id": "2024112300001234"}]
    assert "2024112300001234" in done and "shipped" in done and "SF1234567" in done


async def test_refund_question_is_answered_from_the_faq_with_a_citation(desk: Desk) -> None:
    async with desk.client() as http:
        whole = await say(http, "refund-1", "退款多久到账")
        streamed = await http.post(
            "/v1/chat/completions",
            json={
                "model": MODEL,
                "messages": [{"role": "user", "content": "退款多久到账"}],
                "temperature": 0,
                "max_tokens": 24,
                "stream": True,
            },
            headers={"X-Luodi-Conversation": "refund-2"},
        )
    assert whole["citations"], whole
    assert whole["citations"][0]["document"] == "faq.md"
    assert "参考资料: [1] faq.md" in content(whole)
    chunks = [
        json.loads(line[len("data: ") :])
        for line in streamed.text.splitlines()
        if line.startswith("data: ") and line != "data: [DONE]"
    ]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert "参考资料: [1] faq.md" in text
    assert any(c.get("citations") for c in chunks)


async def test_handoff_stops_the_model_until_an_admin_releases_the_session(desk: Desk) -> None:
    async with desk.client() as http:
        handed = content(await say(http, "human-1", "转人工"))
        assert "人工客服" in handed
        waiting = content(await say(http, "human-1", "退款多久到账"))
        assert "请稍候" in waiting
        listed = await http.get("/admin/support/sessions", params={"handoff": "true"})
        assert listed.status_code == 200, listed.text
        keys = [s["conversation"] for s in listed.json()["data"]]
        key = next(k for k in keys if k.endswith(":human-1"))
        released = await http.post(f"/admin/support/sessions/shop/{key}/release")
        assert released.status_code == 200, released.text
        answered = await say(http, "human-1", "退款多久到账")
    assert answered["citations"]
    assert [e["reason"] for e in desk.backoffice.handoffs if e["conversation"] == key] == [
        "asked for a human"
    ]


async def test_a_question_outside_the_shop_is_refused_with_an_offer_of_a_human(
    desk: Desk,
) -> None:
    async with desk.client() as http:
        answer = await say(http, "unknown-1", "量子力学的基本原理是什么")
    assert "不知道" in content(answer)
    assert not answer.get("citations")


@pytest.mark.parametrize(
    "question", ["Do you ship to Canada?", "保修期内换电池要钱吗", "Can I get a refund in cash?"]
)
async def test_a_shop_question_the_faq_cannot_answer_gets_i_dont_know(
    desk: Desk, question: str
) -> None:
    # Retrieval finds the nearest passages anyway (shipping, refunds): what they do not
    # name (Canada, a battery, cash) keeps them below min_relevance.
    async with desk.client() as http:
        answer = await say(http, f"unanswerable-{len(question)}-{ord(question[0])}", question)
    said = content(answer)
    assert "不知道" in said or "don't know" in said
    assert "人工" in said or "human" in said  # the hand-off is offered
    assert not answer.get("citations")


async def test_two_conversations_keep_separate_sessions(desk: Desk) -> None:
    async with desk.client() as http:
        content(await say(http, "iso-a", "where is my order"))
        other = content(await say(http, "iso-b", "2024112300009999"))
        assert "2024112300009999" not in other  # b has no question pending
        done = content(await say(http, "iso-a", "It is 2024112300005555"))
        assert "2024112300005555" in done
        a = await http.get("/admin/support/sessions", params={"assistant": "shop"})
        sessions = {s["conversation"].split(":", 1)[1]: s for s in a.json()["data"]}
        assert sessions["iso-a"]["intents"][0]["intent"] == "order_status"
        assert all(i["intent"] != "order_status" for i in sessions["iso-b"]["intents"])
        key = sessions["iso-b"]["conversation"]
        erased = await http.delete(f"/admin/support/sessions/shop/{key}")
        assert erased.status_code == 200, erased.text
        gone = await http.get(f"/admin/support/sessions/shop/{key}")
    assert gone.status_code == 404


async def test_classify_route_returns_intent_confidence_alternatives_and_path(
    desk: Desk,
) -> None:
    async with desk.client() as http:
        answer = await http.post("/v1/apps/support/shop/classify", json={"text": "我要退款"})
        missing = await http.post("/v1/apps/support/nope/classify", json={"text": "hi"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["intent"] == "refund" and body["path"] in ("knn", "llm")
    assert 0.0 <= body["confidence"] <= 1.0 and isinstance(body["alternatives"], list)
    assert missing.status_code == 404


async def test_a_reload_pins_the_persona_and_the_intent_block_in_the_prefix_cache(
    desk: Desk, engine: LlamaCppEngine
) -> None:
    async with desk.client() as http:
        reloaded = await http.post("/admin/support/reload")
        assert reloaded.status_code == 200, reloaded.text
        pins = engine.health()["pinned_prefixes"]
        assert {"support:shop:persona", "support:shop:judge"} <= set(pins)  # type: ignore[arg-type]
        # A turn's prompt starts with the pinned persona: most of it comes from the cache.
        answer = await say(http, "pinned-1", "退款多久到账")
    cached = answer["usage"].get("prompt_tokens_details", {}).get("cached_tokens", 0)
    assert cached > answer["usage"]["prompt_tokens"] // 2
