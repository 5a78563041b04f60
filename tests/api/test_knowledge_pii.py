"""Knowledge ingestion under a privacy policy: personal data never reaches the index."""

from __future__ import annotations

from pathlib import Path

import httpx

from luodi.api.app import create_app
from luodi.config import KnowledgeSettings, PrivacySettings, Settings
from luodi.config.privacy import PolicySettings
from luodi.security import Gateway
from tests.conftest import make_key

PHONE = "13812345678"


async def test_uploaded_document_is_masked_before_indexing(
    live_gateway: Gateway, tmp_path: Path
) -> None:
    settings = Settings(
        knowledge=KnowledgeSettings(data_dir=tmp_path / "kb", pii_policy="kb"),
        privacy=PrivacySettings(
            policies={"default": PolicySettings(), "kb": PolicySettings(default_operator="replace")}
        ),
    )
    app = create_app(settings, engines={}, gateway=live_gateway)
    key = make_key(live_gateway, "kb-pii-admin", ["admin"])
    doc = f"客服热线：请联系张经理，手机 {PHONE}，工作日九点到五点。".encode()
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {key}"},
        ) as http,
    ):
        assert (await http.post("/v1/knowledge", json={"name": "hotline"})).status_code < 300
        up = await http.post(
            "/v1/knowledge/hotline/documents", files={"files": ("hotline.txt", doc)}
        )
        assert up.status_code < 300, up.text
        found = await http.post(
            "/v1/knowledge/hotline/search", json={"query": "客服热线 手机", "top_k": 3}
        )
    assert found.status_code == 200, found.text
    text = str(found.json())
    assert "客服热线" in text and PHONE not in text
    indexed = [
        p for p in (tmp_path / "kb").rglob("*") if p.is_file() and "originals" not in p.parts
    ]
    assert indexed  # the catalog, BM25 and vectors
    assert not any(PHONE.encode() in p.read_bytes() for p in indexed)
