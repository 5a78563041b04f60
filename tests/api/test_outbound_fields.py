"""Nothing identifying leaves the premises in any field: a recording stand-in cloud
receives every string-bearing field of the chat and completion schemas masked."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from luodi.api.app import create_app
from tests.conftest import make_key, offsite_settings, served
from tests.engine.standin import StandIn

ID_CARD = "11010519491231002X"
PHONE = "13812345678"
EMAIL = "zhang.wei@example.com"
SECRETS = (ID_CARD, PHONE, EMAIL)
MODEL = "cloud-qwen"


@pytest.fixture
def cloud() -> Iterator[StandIn]:
    standin = StandIn("cloud")
    standin.up()
    yield standin
    standin.down()


@pytest.fixture
async def front(cloud: StandIn, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A gateway in api mode whose only backend is the recording stand-in, off premises."""
    settings = offsite_settings(
        tmp_path / "front.db",
        MODEL,
        name="cloud",
        kind="openai",
        url=cloud.url,
        upstream_model="cloud",
        api_key="sk-cloud",
    )
    app = create_app(settings)
    async with served(app) as url:
        yield url, make_key(app.state.luodi.gateway, "bank-user", ["developer"])


def _every_chat_field(secret: str) -> dict[str, Any]:
    """A chat request with ``secret`` in every string a client can fill in."""
    return {
        "model": MODEL,
        "max_tokens": 8,
        "messages": [
            {"role": "system", "content": f"Customer file {secret}.", "name": f"desk {secret}"},
            {"role": "user", "content": [{"type": "text", "text": f"My number is {secret}"}]},
            {
                "role": "assistant",
                "content": f"Noted {secret}",
                "reasoning_content": f"The customer is {secret}",
                "tool_calls": [
                    {
                        "id": f"call {secret}",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": json.dumps({"q": secret})},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": f"call {secret}", "content": f"found {secret}"},
            {"role": "user", "content": f"Call me at {secret}"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {
                    "name": "lookup",
                    "description": f"Looks up records such as {secret}",
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "q": {
                                "type": "string",
                                "description": f"e.g. {secret}",
                                "examples": [secret],
                                "default": secret,
                            }
                        },
                    },
                },
            }
        ],
        "stop": [f"END {secret}"],
        "chat_template_kwargs": {"enable_thinking": False, "note": f"for {secret}"},
    }


def _schema_request(secret: str) -> dict[str, Any]:
    return {
        "model": MODEL,
        "max_tokens": 8,
        "messages": [{"role": "user", "content": "Fill in the form."}],
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "form",
                "description": f"The form of {secret}",
                "schema": {
                    "type": "object",
                    "properties": {"id": {"type": "string", "description": f"like {secret}"}},
                },
            },
        },
    }


async def _post(url: str, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
    ) as http:
        return await http.post(path, json=body)


@pytest.mark.parametrize("secret", SECRETS)
async def test_no_chat_field_reaches_the_cloud_in_clear(
    front: tuple[str, str], cloud: StandIn, secret: str
) -> None:
    url, key = front
    for body in (_every_chat_field(secret), _schema_request(secret)):
        resp = await _post(url, key, "/v1/chat/completions", body)
        assert resp.status_code == 200, resp.text
    sent = json.dumps(cloud.received, ensure_ascii=False)
    assert len(cloud.received) == 2
    assert secret not in sent
    # The fields did arrive, masked: nothing was dropped to pass the test.
    first = cloud.received[0]
    assert first["tools"][0]["function"]["description"].startswith("Looks up records such as")
    assert first["messages"][0]["name"].startswith("desk ")
    assert first["stop"] and first["stop"][0].startswith("END ")


async def test_no_completion_field_reaches_the_cloud_in_clear(
    front: tuple[str, str], cloud: StandIn
) -> None:
    url, key = front
    body = {"model": MODEL, "prompt": f"Customer {ID_CARD} says", "stop": [PHONE], "max_tokens": 4}
    resp = await _post(url, key, "/v1/completions", body)
    assert resp.status_code == 200, resp.text
    sent = json.dumps(cloud.received, ensure_ascii=False)
    assert ID_CARD not in sent and PHONE not in sent


async def test_an_image_bound_for_the_cloud_is_refused(
    front: tuple[str, str], cloud: StandIn
) -> None:
    url, key = front
    body = {
        "model": MODEL,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "Read this ID card"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0K"}},
                ],
            }
        ],
    }
    resp = await _post(url, key, "/v1/chat/completions", body)
    assert resp.status_code in (400, 403), resp.text
    assert cloud.received == []
