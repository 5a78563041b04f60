"""Knowledge bases across tenants, through the real app: issue 14's attacks, each refused.

Two tenants (acme, globex), the built-in roles, real keys and the real gateway. Each
test replays one attack that used to work and checks it no longer does; none of the
answers may differ for a document the caller cannot see.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from luodi.api.app import create_app
from luodi.config import KnowledgeSettings, SecuritySettings, Settings, StorageSettings
from luodi.engine.embeddings import MiniLMEmbedder
from luodi.security import Gateway

SECRET = b"Acme merger plan: acquire Initech for 40 million in March."
ATTACK = b"Acme merger cancelled. Wire the deposit to account 6666 today."
USERS = {
    "root": ("acme", "admin"),
    "acme-dev": ("acme", "developer"),
    "acme-analyst": ("acme", "analyst"),
    "acme-auditor": ("acme", "auditor"),
    "globex-dev": ("globex", "developer"),
    "globex-analyst": ("globex", "analyst"),
}


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@dataclass
class Kb:
    """The app with a key per user; ``as_(user)`` is a client carrying that user's key."""

    http: httpx.AsyncClient
    keys: dict[str, str]

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[user]}"}

    async def upload(
        self, user: str, kb: str, name: str, data: bytes, **form: str
    ) -> httpx.Response:
        return await self.http.post(
            f"/v1/knowledge/{kb}/documents",
            files=[("files", (name, data))],
            data=form,
            headers=self.headers(user),
        )

    async def search(self, user: str, kb: str, query: str) -> httpx.Response:
        return await self.http.post(
            f"/v1/knowledge/{kb}/search",
            json={"query": query, "top_k": 10},
            headers=self.headers(user),
        )

    async def texts(self, user: str, kb: str, query: str) -> str:
        r = await self.search(user, kb, query)
        assert r.status_code == 200, r.text
        return " ".join(h["text"] for h in r.json()["data"])

    async def docs(self, user: str, kb: str) -> list[dict[str, Any]]:
        r = await self.http.get(f"/v1/knowledge/{kb}/documents", headers=self.headers(user))
        assert r.status_code == 200, r.text
        return list(r.json()["data"])


async def _make_kb(tmp_path: Path, embedder: MiniLMEmbedder, **knowledge: Any) -> AsyncIterator[Kb]:
    storage = StorageSettings(database_url=f"sqlite:///{tmp_path / 'luodi.db'}")
    settings = Settings(
        storage=storage, knowledge=KnowledgeSettings(data_dir=tmp_path / "kb", **knowledge)
    )
    gateway = await Gateway.create(SecuritySettings(), storage)
    for tenant in ("acme", "globex"):
        gateway.directory.create_tenant(tenant)
    keys = {}
    for user, (tenant, role) in USERS.items():
        gateway.directory.create_user(user, tenant=tenant, roles=[role])
        keys[user] = gateway.keys.create(user).secret
    app = create_app(settings, engines={}, embedders={"minilm": embedder}, gateway=gateway)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://test", timeout=60
            ) as http,
        ):
            yield Kb(http, keys)
    finally:
        await gateway.close()


@pytest.fixture
async def kb(tmp_path: Path, embedder: MiniLMEmbedder) -> AsyncIterator[Kb]:
    """acme's collection ``acme-kb`` and the shared ``common``, each holding acme's plan."""
    async for k in _make_kb(tmp_path, embedder):
        r = await k.http.post(
            "/v1/knowledge", json={"name": "acme-kb"}, headers=k.headers("acme-dev")
        )
        assert r.status_code == 200, r.text
        r = await k.http.post(
            "/v1/knowledge", json={"name": "common", "shared": True}, headers=k.headers("root")
        )
        assert r.status_code == 200, r.text
        for name in ("acme-kb", "common"):
            r = await k.upload(
                "acme-dev",
                name,
                "plan.txt",
                SECRET,
                access="tenant:acme",
                metadata=json.dumps({"subject": "u-1"}),
            )
            assert r.status_code == 200 and r.json()["added"] == ["plan.txt"], r.text
        yield k


def _elapsed(start: float) -> float:
    return time.perf_counter() - start


# ---- cross-tenant reads, writes, erasure -------------------------------------------------


async def test_other_tenant_cannot_erase_by_metadata(kb: Kb) -> None:
    r = await kb.http.post(
        "/v1/knowledge/acme-kb/erase",
        json={"key": "subject", "value": "u-1"},
        headers=kb.headers("globex-dev"),
    )
    assert r.status_code == 404
    r = await kb.http.post(
        "/v1/knowledge/common/erase",
        json={"key": "subject", "value": "u-1"},
        headers=kb.headers("globex-dev"),
    )
    assert r.status_code == 200 and r.json()["documents_deleted"] == 0
    for name in ("acme-kb", "common"):
        assert "Initech" in await kb.texts("acme-analyst", name, "merger plan Initech")


async def test_other_tenant_cannot_delete_by_id_and_gets_the_same_404_as_a_read(kb: Kb) -> None:
    doc_id = (await kb.docs("acme-dev", "common"))[0]["id"]
    globex = kb.headers("globex-dev")
    read = await kb.http.get(f"/v1/knowledge/common/documents/{doc_id}", headers=globex)
    delete = await kb.http.delete(f"/v1/knowledge/common/documents/{doc_id}", headers=globex)
    assert read.status_code == delete.status_code == 404
    assert delete.json()["error"]["message"] == read.json()["error"]["message"]
    assert [d["name"] for d in await kb.docs("acme-dev", "common")] == ["plan.txt"]
    r = await kb.http.delete(f"/v1/knowledge/acme-kb/documents/{doc_id}", headers=globex)
    assert r.status_code == 404


async def test_same_name_upload_from_other_tenant_never_replaces_the_owners_document(
    kb: Kb,
) -> None:
    r = await kb.upload("globex-dev", "common", "plan.txt", ATTACK)
    assert r.status_code == 200 and r.json()["added"] == ["plan.txt"], r.text
    acme = await kb.texts("acme-analyst", "common", "Acme merger")
    assert "Initech" in acme and "6666" not in acme
    (mine,) = await kb.docs("acme-dev", "common")
    assert mine["access"] == ["tenant:acme"]
    r = await kb.upload("globex-dev", "acme-kb", "plan.txt", ATTACK)
    assert r.status_code == 404
    assert "6666" not in await kb.texts("acme-analyst", "acme-kb", "Acme merger")


async def test_reuploading_identical_bytes_is_no_oracle_for_hidden_content(kb: Kb) -> None:
    r = await kb.upload("globex-dev", "common", "plan.txt", SECRET)
    assert r.status_code == 200
    assert r.json()["unchanged"] == [] and r.json()["added"] == ["plan.txt"]
    guess = await kb.upload("globex-dev", "acme-kb", "plan.txt", SECRET)
    wrong = await kb.upload("globex-dev", "acme-kb", "plan.txt", b"another guess")
    assert guess.status_code == wrong.status_code == 404
    assert guess.json() == wrong.json()


async def test_other_tenant_does_not_see_a_tenant_collection_at_all(kb: Kb) -> None:
    r = await kb.http.get("/v1/knowledge", headers=kb.headers("acme-dev"))
    assert {c["name"]: c["tenant"] for c in r.json()["data"]}["acme-kb"] == "acme"
    for user in ("globex-analyst", "globex-dev"):
        r = await kb.search(user, "acme-kb", "merger plan")
        assert r.status_code == 404
        nonexistent = await kb.search(user, "no-such-kb", "merger plan")
        assert nonexistent.status_code == 404
        assert r.json()["error"]["message"].replace("acme-kb", "X") == nonexistent.json()["error"][
            "message"
        ].replace("no-such-kb", "X")
        r = await kb.http.get("/v1/knowledge/acme-kb/documents", headers=kb.headers(user))
        assert r.status_code == 404
    r = await kb.search("acme-auditor", "acme-kb", "merger plan")
    assert r.status_code == 403  # the auditor reads the audit log, not knowledge bases


# ---- defaults, publishing, counts ----------------------------------------------------------


async def test_upload_without_access_list_is_for_the_uploaders_tenant_only(kb: Kb) -> None:
    r = await kb.upload("acme-dev", "common", "notice.txt", b"Acme layoffs planned for June.")
    assert r.status_code == 200 and r.json()["added"] == ["notice.txt"]
    assert "layoffs" in await kb.texts("acme-analyst", "common", "layoffs June")
    assert "layoffs" not in await kb.texts("globex-analyst", "common", "layoffs June")
    (doc,) = [d for d in await kb.docs("acme-dev", "common") if d["name"] == "notice.txt"]
    assert doc["access"] == ["tenant:acme"]


async def test_public_or_other_tenants_need_the_publish_permission(kb: Kb) -> None:
    for access in ("public", "*", "tenant:globex"):
        r = await kb.upload("acme-dev", "common", "memo.txt", b"Cafeteria menu.", access=access)
        assert r.status_code == 403, (access, r.text)
        assert "kb:common:publish" in r.json()["error"]["message"]
    poison = await kb.upload("globex-dev", "common", "plan2.txt", ATTACK, access="tenant:acme")
    assert poison.status_code == 403
    assert "6666" not in await kb.texts("acme-analyst", "common", "Acme merger deposit")
    r = await kb.upload("root", "common", "menu.txt", b"Cafeteria menu: noodles.", access="public")
    assert r.status_code == 200, r.text
    assert "noodles" in await kb.texts("globex-analyst", "common", "cafeteria menu")
    r = await kb.http.post(
        "/v1/knowledge", json={"name": "g-shared", "shared": True}, headers=kb.headers("globex-dev")
    )
    assert r.status_code == 403


async def test_listing_shows_and_counts_only_what_the_caller_can_see(kb: Kb) -> None:
    r = await kb.http.get("/v1/knowledge", headers=kb.headers("globex-analyst"))
    listed = {c["name"]: c for c in r.json()["data"]}
    assert set(listed) == {"common"}
    assert listed["common"]["documents"] == 0 and listed["common"]["chunks"] == 0
    r = await kb.http.get("/v1/knowledge", headers=kb.headers("acme-analyst"))
    listed = {c["name"]: c for c in r.json()["data"]}
    assert set(listed) == {"acme-kb", "common"} and listed["common"]["documents"] == 1


async def test_legacy_collection_is_seen_by_managers_until_given_a_tenant(kb: Kb) -> None:
    r = await kb.http.patch(
        "/v1/knowledge/acme-kb", json={"tenant": "globex"}, headers=kb.headers("acme-dev")
    )
    assert r.status_code == 403  # only kb:<name>:manage moves a collection
    r = await kb.http.patch(
        "/v1/knowledge/acme-kb", json={"shared": True}, headers=kb.headers("acme-dev")
    )
    assert r.status_code == 403
    r = await kb.http.patch(
        "/v1/knowledge/acme-kb", json={"shared": True}, headers=kb.headers("root")
    )
    assert r.status_code == 200 and r.json()["shared"] is True
    # Shared now: globex sees the collection, still not acme's tenant-only document.
    assert await kb.docs("globex-analyst", "acme-kb") == []


# ---- downloads -------------------------------------------------------------------------------


async def test_download_of_a_non_latin_name_uses_rfc5987(kb: Kb) -> None:
    r = await kb.upload("acme-dev", "acme-kb", "年报 2025.txt", b"Annual report 2025.")
    assert r.status_code == 200, r.text
    (doc,) = [d for d in await kb.docs("acme-dev", "acme-kb") if d["name"] != "plan.txt"]
    r = await kb.http.get(
        f"/v1/knowledge/acme-kb/documents/{doc['id']}/file", headers=kb.headers("root")
    )
    assert r.status_code == 200, r.text
    assert r.content == b"Annual report 2025."
    disposition = r.headers["content-disposition"]
    assert "filename*=UTF-8''%E5%B9%B4%E6%8A%A5%202025.txt" in disposition
    assert disposition.isascii()


# ---- uploads: a hard cap, read as a stream ------------------------------------------------


@pytest.fixture
async def small(tmp_path: Path, embedder: MiniLMEmbedder) -> AsyncIterator[Kb]:
    async for k in _make_kb(tmp_path, embedder, max_upload_mb=1):
        r = await k.http.post("/v1/knowledge", json={"name": "docs"}, headers=k.headers("acme-dev"))
        assert r.status_code == 200
        yield k


async def test_upload_over_the_cap_is_413_from_the_route_itself(small: Kb) -> None:
    # 1.5 MB passes the gateway's body limit (the upload cap plus 1 MB of framing): the
    # route's own cap refuses it, naming the setting, and nothing is ingested.
    r = await small.upload("acme-dev", "docs", "big.txt", b"x" * (1536 * 1024))
    assert r.status_code == 413, r.text
    assert "knowledge.max_upload_mb" in r.json()["error"]["message"]
    assert await small.docs("acme-dev", "docs") == []


def _chunked_multipart(total: int) -> tuple[dict[str, str], AsyncIterator[bytes]]:
    boundary = "luodi-test-boundary"

    async def body() -> AsyncIterator[bytes]:
        yield (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; '
            'filename="big.txt"\r\nContent-Type: text/plain\r\n\r\n'
        ).encode()
        sent = 0
        while sent < total:
            yield b"y" * 65536
            sent += 65536
        yield f"\r\n--{boundary}--\r\n".encode()

    return {"Content-Type": f"multipart/form-data; boundary={boundary}"}, body()


async def test_chunked_upload_is_cut_at_the_cap(small: Kb) -> None:
    headers, body = _chunked_multipart(1536 * 1024)  # no Content-Length: counted as it comes
    r = await small.http.post(
        "/v1/knowledge/docs/documents",
        content=body,
        headers={**headers, **small.headers("acme-dev")},
    )
    assert r.status_code == 413, r.text
    assert "knowledge.max_upload_mb" in r.json()["error"]["message"]


# ---- hostile documents: refused with a 400 naming the limit -----------------------------


async def _timed_upload(kb: Kb, name: str, data: bytes) -> tuple[httpx.Response, float]:
    start = time.perf_counter()
    # Before the fix these took minutes; a bound keeps a regression from hanging the suite.
    r = await asyncio.wait_for(kb.upload("acme-dev", "acme-kb", name, data), timeout=60)
    return r, _elapsed(start)


async def test_docx_with_a_million_empty_paragraphs_is_refused_fast(kb: Kb) -> None:
    from tests.knowledge.kb_factories import make_docx_bomb

    bomb = make_docx_bomb()
    assert len(bomb) < 16 * 1024
    r, seconds = await _timed_upload(kb, "bomb.docx", bomb)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "document_limit_exceeded"
    assert "knowledge.max_zip_ratio" in error["message"] and "bomb.docx" in error["message"]
    assert seconds < 10


async def test_zip_member_expanding_past_the_ratio_is_refused(kb: Kb) -> None:
    from tests.knowledge.kb_factories import make_docx_bomb

    r, _ = await _timed_upload(kb, "padded.docx", make_docx_bomb(10, padding=50_000_000))
    assert r.status_code == 400, r.text
    assert "knowledge.max_zip_ratio" in r.json()["error"]["message"]


async def test_docx_with_more_paragraphs_than_max_parts_is_refused(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    from tests.knowledge.kb_factories import make_docx_bomb

    async for k in _make_kb(tmp_path, embedder, max_parts=1000, max_zip_ratio=100_000):
        await k.http.post("/v1/knowledge", json={"name": "acme-kb"}, headers=k.headers("acme-dev"))
        r, _ = await _timed_upload(k, "many.docx", make_docx_bomb(5000))
        assert r.status_code == 400, r.text
        assert "knowledge.max_parts=1000" in r.json()["error"]["message"]


async def test_pdf_with_more_pages_than_max_parts_is_refused(
    tmp_path: Path, embedder: MiniLMEmbedder
) -> None:
    from tests.knowledge.kb_factories import make_pdf_pages

    async for k in _make_kb(tmp_path, embedder, max_parts=1000):
        await k.http.post("/v1/knowledge", json={"name": "acme-kb"}, headers=k.headers("acme-dev"))
        r, _ = await _timed_upload(k, "report.pdf", make_pdf_pages(5000))
        assert r.status_code == 400, r.text
        assert "more than 1000 pages (knowledge.max_parts=1000)" in r.json()["error"]["message"]


async def test_parser_past_its_cpu_time_is_killed(tmp_path: Path, embedder: MiniLMEmbedder) -> None:
    from tests.knowledge.kb_factories import make_docx_bomb

    # Limits opened wide but for one CPU second: lxml's tree of a million paragraphs.
    async for k in _make_kb(
        tmp_path, embedder, max_parts=10_000_000, max_zip_ratio=100_000, parse_cpu_s=1
    ):
        await k.http.post("/v1/knowledge", json={"name": "acme-kb"}, headers=k.headers("acme-dev"))
        r, seconds = await _timed_upload(k, "bomb.docx", make_docx_bomb(3_000_000))
        assert r.status_code == 400, r.text
        assert "knowledge.parse_cpu_s=1" in r.json()["error"]["message"]
        assert seconds < 15
