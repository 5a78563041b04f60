"""A live server with the shop assistant, its FAQ knowledge base and a stand-in webhook server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from luodi.config import KnowledgeSettings, Settings, StorageSettings, SupportSettings
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.security import Gateway
from tests.conftest import make_key, served

CORPUS = Path(__file__).resolve().parents[3] / "benchmarks" / "corpora" / "support"


@dataclass
class Backoffice:
    """The stand-in for the shop's own systems: order lookups and hand-off events."""

    orders: list[dict[str, Any]] = field(default_factory=list)
    handoffs: list[dict[str, Any]] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/orders")
        async def order(body: dict[str, Any]) -> dict[str, Any]:
            self.orders.append(body)
            return {"status": "已发货 shipped", "detail": "SF Express SF1234567, arriving tomorrow"}

        @app.post("/cancel")
        async def cancel(body: dict[str, Any]) -> dict[str, Any]:
            return {"status": "已取消 cancelled"}

        @app.post("/handoff")
        async def handoff(body: dict[str, Any]) -> dict[str, Any]:
            self.handoffs.append(body)
            return {"ok": True}

        return app


@dataclass
class Desk:
    """The API with the shop assistant, served on loopback."""

    url: str
    headers: dict[str, str]
    backoffice: Backoffice
    assistants: Path

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=300)


def shop_yaml(backoffice_url: str) -> str:
    """The shipped shop assistant, its webhooks pointed at the stand-in server."""
    text = (CORPUS / "shop.yaml").read_text(encoding="utf-8")
    text = text.replace("http://127.0.0.1:9000", backoffice_url)
    return text.replace("escalation:\n", f'escalation:\n  webhook: "{backoffice_url}/handoff"\n', 1)


@pytest.fixture(scope="module")
async def desk(
    engine: LlamaCppEngine, live_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Desk]:
    from luodi.api.app import create_app

    root = tmp_path_factory.mktemp("support")
    backoffice = Backoffice()
    async with served(backoffice.app()) as backoffice_url:
        assistants = root / "assistants"
        assistants.mkdir()
        (assistants / "shop.yaml").write_text(shop_yaml(backoffice_url), encoding="utf-8")
        settings = Settings(
            knowledge=KnowledgeSettings(data_dir=root / "kb"),
            storage=StorageSettings(database_url=f"sqlite:///{root / 'luodi.db'}"),
            support=SupportSettings(assistants_dir=assistants, reload_check_s=0),
        )
        app = create_app(settings, engines={engine.info.name: engine}, gateway=live_gateway)
        key = make_key(live_gateway, "support-admin", ["admin"])
        async with served(app) as url:
            desk = Desk(url, {"Authorization": f"Bearer {key}"}, backoffice, assistants)
            async with desk.client() as http:
                made = await http.post("/v1/knowledge", json={"name": "faq"})
                assert made.status_code in (200, 201), made.text
                faq = (CORPUS / "faq.md").read_bytes()
                sent = await http.post(
                    "/v1/knowledge/faq/documents",
                    files={"files": ("faq.md", faq, "text/markdown")},
                )
                assert sent.status_code in (200, 201), sent.text
            yield desk
