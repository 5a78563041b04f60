"""API mode end to end: a luodi gateway whose only backend is another luodi server
standing in for a cloud API; PII must be masked before the prompt leaves."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from luodi.api.app import create_app
from luodi.config import Settings, StorageSettings
from luodi.config.routing import BackendSettings, ModelRoute, RoutingSettings
from luodi.security import AuditFilter
from tests.conftest import LiveServer, make_key, served

pytestmark = pytest.mark.model

ID_CARD = "11010519491231002X"


@pytest.fixture
async def front(live_server: LiveServer, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A second gateway in api mode, routing 'cloud-qwen' to the live server over HTTP."""
    cloud_key = make_key(live_server.gateway, f"cloud-{tmp_path.name}", ["developer"])
    settings = Settings(
        storage=StorageSettings(database_url=f"sqlite:///{tmp_path / 'front.db'}"),
        routing=RoutingSettings(
            mode="api",
            models={
                "cloud-qwen": ModelRoute(
                    backends=[
                        BackendSettings(
                            name="cloud",
                            kind="openai",
                            url=f"{live_server.url}/v1",
                            upstream_model=live_server.model,
                            api_key=cloud_key,
                            location="cloud",
                        )
                    ]
                )
            },
        ),
    )
    app = create_app(settings)
    async with served(app) as url:
        user_key = make_key(app.state.luodi.gateway, "front-user", ["developer"])
        yield url, user_key


async def test_prompt_reaches_the_cloud_masked_and_the_answer_comes_back(
    live_server: LiveServer, front: tuple[str, str]
) -> None:
    url, key = front
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
    ) as http:
        models = (await http.get("/v1/models")).json()["data"]
        routed = next(m for m in models if m["id"] == "cloud-qwen")
        assert "cloud" in json.dumps(routed["backends"])
        resp = await http.post(
            "/v1/chat/completions",
            json={
                "model": "cloud-qwen",
                "messages": [{"role": "user", "content": f"我的身份证号是 {ID_CARD}，请记住。"}],
                "max_tokens": 8,
                "temperature": 0,
            },
        )
        health = (await http.get("/health")).json()
    assert resp.status_code == 200, resp.text
    assert resp.json()["choices"][0]["message"]["content"] is not None
    # The cloud stand-in's own PII stage found nothing: the ID arrived as a pseudonym.
    cloud_records = [
        r
        for r in live_server.gateway.audit_log.query(AuditFilter(), limit=10_000)
        if r["user"] and r["user"].startswith("cloud-") and r["decision"] == "allowed"
    ]
    assert cloud_records and json.loads(cloud_records[-1]["pii_json"]) == {}
    front_state = health["models"]["cloud-qwen"]
    assert "cloud" in json.dumps(front_state)
