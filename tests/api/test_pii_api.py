"""``POST /v1/pii/analyze`` and ``/v1/pii/anonymize`` on the app ``create_app`` builds."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from luodi.api.app import create_app
from luodi.api.pii import PII_PERMISSION
from luodi.config import (
    PrivacySettings,
    SecuritySettings,
    Settings,
    StorageSettings,
)
from luodi.config.privacy import PolicySettings
from luodi.engine.types import (
    FinishReason,
    GenerationEvent,
    GenerationRequest,
    Usage,
)
from luodi.security import AuditFilter, Gateway
from luodi.security.rbac import BUILTIN_ROLES, grants
from tests.api.scripted_engine import ScriptedChatEngine
from tests.conftest import make_key


class Repeater(ScriptedChatEngine):
    """Answers one fixed text: whatever the restorer makes of its tags is what the
    client reads."""

    def __init__(self, answer: str) -> None:
        super().__init__("repeater")
        self._answer = answer

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationEvent]:
        yield GenerationEvent(
            request.request_id,
            text=self._answer,
            finish_reason=FinishReason.STOP,
            usage=Usage(len(request.prompt_tokens), 1),
        )


@dataclass
class PIIApi:
    app: FastAPI
    gateway: Gateway

    def client(self, user: str, roles: list[str]) -> httpx.AsyncClient:
        """A client for a new user with ``roles`` and a fresh key."""
        key = make_key(self.gateway, user, roles)
        return httpx.AsyncClient(
            transport=httpx.ASGITransport(app=self.app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {key}"},
        )

    def records(self, user: str) -> list[dict[str, Any]]:
        return self.gateway.audit_log.query(AuditFilter(user=user), limit=1000)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[PIIApi]:
    """The real app with two PII policies and a model that answers ``<PHONE_1>``."""
    storage = StorageSettings(database_url=f"sqlite:///{tmp_path / 'luodi.db'}")
    settings = Settings(
        storage=storage,
        privacy=PrivacySettings(
            policies={
                "default": PolicySettings(),
                "strict": PolicySettings(block=["ID_CARD"]),
            }
        ),
    )
    gateway = await Gateway.create(SecuritySettings(), storage)
    engine = Repeater("您的号码是<PHONE_1>")
    app = create_app(settings, engines={"repeater": engine}, embedders={}, gateway=gateway)
    try:
        async with app.router.lifespan_context(app):
            yield PIIApi(app, gateway)
    finally:
        await gateway.close()


@pytest.fixture
async def client(api: PIIApi) -> AsyncIterator[httpx.AsyncClient]:
    """A caller holding ``pii:use`` (the admin role's ``*``; see the role tests below)."""
    async with api.client("pii-caller", ["admin"]) as http:
        yield http


async def test_analyze_returns_findings_without_values_by_default(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/v1/pii/analyze", json={"text": "王磊的手机13812345678"})
    assert r.status_code == 200
    body = r.json()
    assert body["counts"] == {"PERSON": 1, "PHONE": 1}
    phone = body["findings"][1]
    assert (phone["entity_type"], phone["start"], phone["end"]) == ("PHONE", 5, 16)
    assert "text" not in phone and "13812345678" not in r.text


async def test_analyze_can_echo_values_and_filter_entities(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/pii/analyze",
        json={"text": "王磊的手机13812345678", "entities": ["PHONE"], "return_text": True},
    )
    assert [f["text"] for f in r.json()["findings"]] == ["13812345678"]


async def test_anonymize_with_the_default_policy_needs_a_conversation(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/v1/pii/anonymize", json={"text": "手机13812345678"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "conversation_id"
    ok = await client.post(
        "/v1/pii/anonymize", json={"text": "手机13812345678", "conversation_id": "x"}
    )
    assert ok.json()["text"] == "手机<PHONE_1>"


@pytest.mark.parametrize(
    ("operator", "expected"),
    [("mask", "手机138****5678"), ("redact", "手机"), ("replace", "手机<PHONE_1>")],
)
async def test_anonymize_applies_the_requested_operator(
    client: httpx.AsyncClient, operator: str, expected: str
) -> None:
    r = await client.post(
        "/v1/pii/anonymize", json={"text": "手机13812345678", "operators": {"PHONE": operator}}
    )
    body = r.json()
    assert body["text"] == expected
    assert body["items"][0]["operator"] == operator


async def test_blocked_entity_is_an_openai_shaped_403(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/pii/anonymize",
        json={"text": "身份证11010519491231002X", "policy": "strict", "operators": {}},
    )
    assert r.status_code == 403
    assert r.json()["error"]["code"] == "pii_blocked"


async def test_unknown_operator_is_an_openai_shaped_400_naming_it(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post("/v1/pii/anonymize", json={"text": "x", "operators": {"PHONE": "shred"}})
    assert r.status_code == 400
    error = r.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "operators.PHONE")


async def test_auditor_is_refused_the_pii_api_and_the_refusal_is_audited(api: PIIApi) -> None:
    async with api.client("auditor-1", ["auditor"]) as auditor:
        r = await auditor.post("/v1/pii/analyze", json={"text": "手机13812345678"})
        a = await auditor.post(
            "/v1/pii/anonymize", json={"text": "手机13812345678", "conversation_id": "c"}
        )
    assert (r.status_code, a.status_code) == (403, 403)
    assert PII_PERMISSION in r.json()["error"]["message"]
    records = api.records("auditor-1")
    assert [(x["endpoint"], x["decision"]) for x in records] == [
        ("/v1/pii/analyze", "denied"),
        ("/v1/pii/anonymize", "denied"),
    ]


@pytest.mark.parametrize("role", ["developer", "analyst"])
async def test_roles_that_invoke_models_may_use_the_pii_api(api: PIIApi, role: str) -> None:
    if not grants(BUILTIN_ROLES[role][1], PII_PERMISSION):
        pytest.skip(f"luodi/security/rbac.py does not grant {PII_PERMISSION} to {role} yet")
    async with api.client(f"{role}-1", [role]) as http:
        r = await http.post("/v1/pii/analyze", json={"text": "手机13812345678"})
    assert r.status_code == 200


async def test_every_call_is_audited_with_counts_and_never_values(api: PIIApi) -> None:
    text = "王磊的手机13812345678，邮箱wl@example.com"
    async with api.client("audited", ["admin"]) as http:
        await http.post("/v1/pii/analyze", json={"text": text, "return_text": True})
        await http.post("/v1/pii/anonymize", json={"text": text, "conversation_id": "c"})
        await http.post("/v1/pii/anonymize", json={"text": text, "policy": "nope"})
    records = api.records("audited")
    assert [(r["endpoint"], r["decision"]) for r in records] == [
        ("/v1/pii/analyze", "allowed"),
        ("/v1/pii/anonymize", "allowed"),
        ("/v1/pii/anonymize", "denied"),
    ]
    assert json.loads(records[0]["pii_json"]) == {"PERSON": 1, "PHONE": 1, "EMAIL": 1}
    assert records[1]["pii_json"] == records[0]["pii_json"]
    assert "nope" in str(records[2]["reason"])
    dump = repr(records)
    for value in ("13812345678", "wl@example.com", "王磊"):
        assert value not in dump
    assert all(r["prompt_sha256"] is None for r in records)


async def test_anonymize_cannot_probe_another_keys_conversation(api: PIIApi) -> None:
    async with api.client("alice", ["admin"]) as alice, api.client("mallory", ["admin"]) as mal:
        await alice.post(
            "/v1/pii/anonymize", json={"text": "手机13812345678", "conversation_id": "c"}
        )
        miss = await mal.post(
            "/v1/pii/anonymize", json={"text": "手机13900000000", "conversation_id": "c"}
        )
        guess = await mal.post(
            "/v1/pii/anonymize", json={"text": "手机13812345678", "conversation_id": "c"}
        )
    # One map per key: Alice's number is as new to Mallory's conversation as any other.
    assert miss.json()["text"] == "手机<PHONE_1>"
    assert guess.json()["text"] == "手机<PHONE_2>"


async def test_another_key_in_the_same_conversation_gets_no_one_elses_value(
    api: PIIApi,
) -> None:
    chat = {"model": "repeater", "max_tokens": 8}
    conversation = {"X-Luodi-Conversation": "support-42"}
    async with (
        api.client("alice", ["developer"]) as alice,
        api.client("mallory", ["developer"]) as mallory,
    ):
        mine = await alice.post(
            "/v1/chat/completions",
            headers=conversation,
            json={**chat, "messages": [{"role": "user", "content": "我的手机13812345678"}]},
        )
        theirs = await mallory.post(
            "/v1/chat/completions",
            headers=conversation,
            json={**chat, "messages": [{"role": "user", "content": "请重复<PHONE_1>"}]},
        )
    assert mine.json()["choices"][0]["message"]["content"] == "您的号码是13812345678"
    assert "13812345678" not in theirs.text
