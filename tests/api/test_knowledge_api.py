"""``/v1/knowledge`` routes: upload, search with ACLs, download permission, erasure, sync."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request

from luodi.api.errors import install_error_handlers
from luodi.api.knowledge import build_knowledge_router
from luodi.config.knowledge import KnowledgeSettings
from luodi.engine.embeddings import MiniLMEmbedder
from luodi.errors import AuthenticationError, PermissionDeniedError
from luodi.knowledge import KnowledgeService
from luodi.knowledge.access import Caller

FIXTURES = Path(__file__).parent.parent / "fixtures" / "knowledge"


@dataclass(frozen=True)
class User:
    user: str
    tenant: str | None
    roles: tuple[str, ...]
    grants: frozenset[str]


USERS = {
    "admin": User(
        "admin",
        "hq",
        ("admin",),
        frozenset({"kb:faq:read", "kb:faq:write", "kb:faq:download", "kb:faq:publish"}),
    ),
    "teller": User("teller", "retail", ("teller",), frozenset({"kb:faq:read"})),
}


async def fake_authorize(request: Request, permission: str | None) -> Caller:
    user = USERS.get(request.headers.get("x-user", ""))
    if user is None:
        raise AuthenticationError("unknown user")
    if permission is not None and permission not in user.grants:
        raise PermissionDeniedError(f"{user.user} lacks {permission}")
    return Caller(user.tenant, frozenset(user.roles), user.user, user.grants.__contains__)


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@pytest.fixture
async def client(tmp_path: Path, embedder: MiniLMEmbedder) -> httpx.AsyncClient:
    service = KnowledgeService(KnowledgeSettings(data_dir=tmp_path), embedder)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(build_knowledge_router(service, fake_authorize))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        c.headers["x-user"] = "admin"
        r = await c.post("/v1/knowledge", json={"name": "faq", "shared": True})
        assert r.status_code == 200, r.text
        yield c


def _files(*names: str) -> list[tuple[str, tuple[str, bytes]]]:
    return [("files", (n, (FIXTURES / n).read_bytes())) for n in names]


async def test_upload_reports_bad_file_by_name_and_keeps_the_rest(
    client: httpx.AsyncClient,
) -> None:
    files = [*_files("faq_cn.md", "faq_en.txt"), ("files", ("bad.docx", b"not a docx"))]
    r = await client.post(
        "/v1/knowledge/faq/documents", files=files, data={"metadata": '{"team": "cs"}'}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert sorted(body["added"]) == ["faq_cn.md", "faq_en.txt"]
    assert [f["name"] for f in body["failed"]] == ["bad.docx"]
    docs = (await client.get("/v1/knowledge/faq/documents")).json()["data"]
    assert {d["metadata"]["team"] for d in docs} == {"cs"}


async def test_search_returns_passages_and_respects_access_lists(client: httpx.AsyncClient) -> None:
    await client.post(
        "/v1/knowledge/faq/documents", files=_files("faq_cn.md"), data={"access": "public"}
    )
    await client.post(
        "/v1/knowledge/faq/documents",
        files=[("files", ("hq.txt", "总行内部营业时间调整通知：九点半开门。".encode()))],
        data={"access": "tenant:hq"},
    )
    for user, expected in (("admin", {"faq_cn.md", "hq.txt"}), ("teller", {"faq_cn.md"})):
        r = await client.post(
            "/v1/knowledge/faq/search",
            json={"query": "营业时间", "top_k": 10},
            headers={"x-user": user},
        )
        assert r.status_code == 200
        assert {h["document"] for h in r.json()["data"]} == expected


async def test_teller_cannot_upload_or_download(client: httpx.AsyncClient) -> None:
    await client.post("/v1/knowledge/faq/documents", files=_files("faq_en.txt"))
    doc_id = (await client.get("/v1/knowledge/faq/documents")).json()["data"][0]["id"]
    r = await client.get(f"/v1/knowledge/faq/documents/{doc_id}/file")
    assert r.status_code == 200 and r.content == (FIXTURES / "faq_en.txt").read_bytes()
    teller = {"x-user": "teller"}
    assert (
        await client.get(f"/v1/knowledge/faq/documents/{doc_id}/file", headers=teller)
    ).status_code == 403
    r = await client.post("/v1/knowledge/faq/documents", files=_files("faq_en.txt"), headers=teller)
    assert r.status_code == 403
    assert r.json()["error"]["type"] == "permission_error"


async def test_erasure_by_metadata_makes_the_document_unfindable(client: httpx.AsyncClient) -> None:
    await client.post(
        "/v1/knowledge/faq/documents",
        files=[("files", ("ticket.txt", b"Li Na asked to close account 8899."))],
        data={"metadata": json.dumps({"subject": "u-1"})},
    )
    r = await client.post("/v1/knowledge/faq/erase", json={"key": "subject", "value": "u-1"})
    assert r.json()["documents_deleted"] == 1
    r = await client.post("/v1/knowledge/faq/search", json={"query": "Li Na account 8899"})
    assert all("Li Na" not in h["text"] for h in r.json()["data"])


async def test_unknown_collection_is_404_and_list_hides_unreadable(
    client: httpx.AsyncClient,
) -> None:
    r = await client.post(
        "/v1/knowledge/nope/search", json={"query": "x"}, headers={"x-user": "teller"}
    )
    assert r.status_code == 403  # permission is checked before existence
    r = await client.post("/v1/knowledge/nope/search", json={"query": "x"})
    assert r.status_code == 403
    names = [c["name"] for c in (await client.get("/v1/knowledge")).json()["data"]]
    assert names == ["faq"]


async def test_delete_document_and_sync_without_sources(client: httpx.AsyncClient) -> None:
    await client.post("/v1/knowledge/faq/documents", files=_files("products.csv"))
    doc_id = (await client.get("/v1/knowledge/faq/documents")).json()["data"][0]["id"]
    assert (await client.delete(f"/v1/knowledge/faq/documents/{doc_id}")).json()["deleted"]
    assert (await client.get(f"/v1/knowledge/faq/documents/{doc_id}")).status_code == 404
    assert (await client.post("/v1/knowledge/faq/sync")).json() == {
        "object": "knowledge.sync",
        "sources": {},
    }
