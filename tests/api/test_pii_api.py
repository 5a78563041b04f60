"""``POST /v1/pii/analyze`` and ``/v1/pii/anonymize`` on the app ``create_app`` builds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from luodi.api.app import create_app
from luodi.config import PrivacySettings, SecuritySettings, Settings, StorageSettings
from luodi.config.privacy import PolicySettings
from luodi.security import Gateway
from tests.conftest import make_key


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The real app with no engines, two PII policies and an authenticated caller."""
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
    app = create_app(settings, engines={}, embedders={}, gateway=gateway)
    key = make_key(gateway, "pii-caller", ["developer"])
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://test",
                headers={"Authorization": f"Bearer {key}"},
            ) as http,
        ):
            yield http
    finally:
        await gateway.close()


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
