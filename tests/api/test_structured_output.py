"""response_format over HTTP: strict refusals name the keyword; every answer says if it is valid."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer

pytestmark = pytest.mark.model

SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 20},
        "risk": {"type": "integer", "minimum": 0, "maximum": 100},
    },
    "required": ["name", "risk"],
    "additionalProperties": False,
}


def _body(server: LiveServer, schema: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "model": server.model,
        "messages": [{"role": "user", "content": "A bank customer and their fraud risk, as JSON."}],
        "temperature": 0,
        "response_format": {"type": "json_schema", "json_schema": {"name": "r", "schema": schema}},
        **extra,
    }


async def _post(server: LiveServer, body: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient(base_url=server.url, headers=server.headers, timeout=120) as c:
        return await c.post("/v1/chat/completions", json=body)


async def test_a_valid_answer_says_it_has_no_schema_errors(live_server: LiveServer) -> None:
    resp = await _post(live_server, _body(live_server, SCHEMA, max_tokens=64))
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "stop"
    assert choice["schema_errors"] == []
    assert 0 <= json.loads(choice["message"]["content"])["risk"] <= 100


async def test_an_answer_cut_by_max_tokens_says_it_fails_the_schema(
    live_server: LiveServer,
) -> None:
    resp = await _post(live_server, _body(live_server, SCHEMA, max_tokens=3))
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["schema_errors"] and "not valid JSON" in choice["schema_errors"][0]


async def test_a_streamed_answer_reports_schema_errors_in_its_last_chunk(
    live_server: LiveServer,
) -> None:
    body = _body(live_server, SCHEMA, max_tokens=3, stream=True)
    finals = []
    async with (
        httpx.AsyncClient(base_url=live_server.url, headers=live_server.headers) as client,
        client.stream("POST", "/v1/chat/completions", json=body) as resp,
    ):
        async for line in resp.aiter_lines():
            if line.startswith("data: {"):
                finals += [c for c in json.loads(line[6:])["choices"] if c["finish_reason"]]
    assert len(finals) == 1
    assert finals[0]["finish_reason"] == "length" and finals[0]["schema_errors"]


@pytest.mark.parametrize(
    ("schema", "keyword"),
    [
        ({"type": "array", "items": {"type": "integer"}, "uniqueItems": True}, "uniqueItems"),
        ({"type": "object", "propertyNames": {"pattern": "^[a-z]+$"}}, "propertyNames"),
    ],
)
async def test_strict_schema_with_an_unenforceable_keyword_is_a_400_naming_it(
    live_server: LiveServer, schema: dict[str, Any], keyword: str
) -> None:
    body = _body(live_server, schema)
    body["response_format"]["json_schema"]["strict"] = True
    resp = await _post(live_server, body)
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert keyword in error["message"]
    assert error["param"] == "response_format.json_schema.schema"


async def test_without_strict_the_same_keyword_is_checked_after_generation(
    live_server: LiveServer,
) -> None:
    schema = {
        "type": "array",
        "items": {"type": "integer", "minimum": 0, "maximum": 9},
        "maxItems": 4,
        "uniqueItems": True,
    }
    resp = await _post(live_server, _body(live_server, schema, max_tokens=32))
    choice = resp.json()["choices"][0]
    values = json.loads(choice["message"]["content"])
    assert all(0 <= v <= 9 for v in values) and len(values) <= 4  # enforced
    assert (choice["schema_errors"] == []) is (len(set(values)) == len(values))  # checked
