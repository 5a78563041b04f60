"""Grounding puts numbered passages into the prompt and returns matching citations."""

from __future__ import annotations

from collections.abc import Callable

from kb_factories import FakePrincipal, fixture_files

from luodi.knowledge import KnowledgeService

Make = Callable[..., KnowledgeService]


async def test_ground_numbers_passages_and_returns_citations(make_service: Make) -> None:
    service = make_service()
    service.create_collection("faq", owner="t")
    service.ingest("faq", fixture_files())
    messages = [
        {"role": "system", "content": "You are a bank assistant."},
        {"role": "user", "content": "营业时间是几点？"},
    ]
    grounded, citations = await service.ground(messages, ["faq"], 2, FakePrincipal("t", []))
    assert len(grounded) == 2
    assert grounded[0]["content"].startswith("You are a bank assistant.")
    assert "[1]" in grounded[0]["content"] and "[2]" in grounded[0]["content"]
    assert "cite" in grounded[0]["content"]
    assert [c.index for c in citations] == [1, 2]
    assert citations[0].document == "faq_cn.md"
    assert citations[0].snippet in grounded[0]["content"]
    assert messages[0]["content"] == "You are a bank assistant."  # input not modified


async def test_ground_without_hits_leaves_messages_alone(make_service: Make) -> None:
    service = make_service()
    service.create_collection("empty")
    messages = [{"role": "user", "content": [{"type": "text", "text": "hello"}]}]
    grounded, citations = await service.ground(messages, ["empty"], 3, None)
    assert grounded == messages and citations == []
