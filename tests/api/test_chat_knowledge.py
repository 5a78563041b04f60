"""Chat grounded in a knowledge base over the live API: citations, permissions, erasure."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.conftest import LiveServer, make_key

pytestmark = pytest.mark.model

FAQ = (
    "# 信用卡还款\n\n信用卡的最后还款日是账单日后第二十天。逾期会产生利息。\n\n"
    "# Opening hours\n\nBranches open at 9:00 and close at 17:00 on weekdays.\n"
)


async def test_chat_with_kb_cites_the_retrieved_passage(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(
        base_url=live_server.url, headers=live_server.headers, timeout=120
    ) as http:
        created = await http.post("/v1/knowledge", json={"name": "bank-faq"})
        assert created.status_code in (200, 201), created.text
        upload = await http.post(
            "/v1/knowledge/bank-faq/documents",
            files={"files": ("faq.md", FAQ.encode(), "text/markdown")},
        )
        assert upload.status_code in (200, 201), upload.text
        body = {
            "model": live_server.model,
            "messages": [{"role": "user", "content": "信用卡最后还款日是哪天？"}],
            "kb": ["bank-faq"],
            "kb_top_k": 2,
            "max_tokens": 8,
            "temperature": 0,
        }
        whole = await http.post("/v1/chat/completions", json=body)
        streamed = await http.post("/v1/chat/completions", json={**body, "stream": True})
    assert whole.status_code == 200, whole.text
    citations = whole.json()["citations"]
    assert citations and citations[0]["index"] == 1
    assert "还款日" in citations[0]["snippet"] and citations[0]["document"] == "faq.md"
    finals = [
        json.loads(line[6:])
        for line in streamed.text.splitlines()
        if line.startswith("data: {") and '"citations"' in line
    ]
    assert finals and finals[0]["citations"][0]["document"] == "faq.md"


async def test_chat_with_a_kb_the_key_may_not_read_is_403(live_server: LiveServer) -> None:
    key = make_key(live_server.gateway, "kb-outsider", ["analyst"])
    async with httpx.AsyncClient(
        base_url=live_server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        resp = await http.post(
            "/v1/chat/completions",
            json={
                "model": live_server.model,
                "messages": [{"role": "user", "content": "hi"}],
                "kb": ["secret-kb"],
                "max_tokens": 2,
            },
        )
    assert resp.status_code in (403, 404), resp.text
    assert resp.json()["error"]["message"]
