"""``POST /v1/pii/analyze`` and ``/v1/pii/anonymize`` on an app holding just that router."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from luodi.api.pii import build_pii_router
from luodi.config.privacy import PolicySettings, PrivacySettings
from luodi.errors import LuodiError
from luodi.privacy import PIIStage


def make_app(stage: PIIStage) -> FastAPI:
    app = FastAPI()

    @app.exception_handler(LuodiError)
    async def _luodi(_: Request, exc: LuodiError) -> JSONResponse:
        return JSONResponse(exc.to_openai(), status_code=exc.status_code, headers=exc.headers())

    app.include_router(build_pii_router(stage))
    return app


@pytest.fixture
def client() -> httpx.AsyncClient:
    settings = PrivacySettings(
        policies={
            "default": PolicySettings(),
            "strict": PolicySettings(block=["ID_CARD"]),
        }
    )
    app = make_app(PIIStage.from_settings(settings))
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


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


async def test_unknown_operator_is_a_422(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/pii/anonymize", json={"text": "x", "operators": {"PHONE": "shred"}})
    assert r.status_code == 422
