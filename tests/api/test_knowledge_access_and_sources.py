"""Changing a document's access list, and reading a collection's sync sources, over HTTP.

The routes the console's knowledge page calls: ``PATCH /v1/knowledge/{kb}/documents/{id}``
(the upload's ACL rules apply; search follows the new list at once) and
``GET /v1/knowledge/{kb}/sources`` (sources in the caller's scope with their runs).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from luodi.api.app import create_app
from luodi.config import KnowledgeSettings, SecuritySettings, Settings, StorageSettings
from luodi.engine.embeddings import MiniLMEmbedder
from luodi.knowledge import KnowledgeService
from luodi.security import Gateway

PLAN = b"The Pudong branch moves to the fortieth floor in March."
USERS = {
    "root": ("acme", "admin"),
    "acme-dev": ("acme", "developer"),
    "acme-analyst": ("acme", "analyst"),
    "globex-dev": ("globex", "developer"),
}


@pytest.fixture(scope="module")
def embedder() -> MiniLMEmbedder:
    return MiniLMEmbedder()


@dataclass
class Kb:
    http: httpx.AsyncClient
    keys: dict[str, str]
    service: KnowledgeService
    doc_id: str

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[user]}"}

    async def hits(self, user: str) -> list[str]:
        r = await self.http.post(
            "/v1/knowledge/shared-kb/search",
            json={"query": "which floor does the branch move to", "top_k": 5},
            headers=self.headers(user),
        )
        assert r.status_code == 200, r.text
        return [h["document"] for h in r.json()["data"]]

    async def set_access(self, user: str, access: list[str]) -> httpx.Response:
        return await self.http.patch(
            f"/v1/knowledge/shared-kb/documents/{self.doc_id}",
            json={"access": access},
            headers=self.headers(user),
        )


@pytest.fixture
async def kb(tmp_path: Path, embedder: MiniLMEmbedder) -> AsyncIterator[Kb]:
    """A shared collection with acme's document ``plan.txt``, readable by acme only."""
    storage = StorageSettings(database_url=f"sqlite:///{tmp_path / 'luodi.db'}")
    settings = Settings(storage=storage, knowledge=KnowledgeSettings(data_dir=tmp_path / "kb"))
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
            root = {"Authorization": f"Bearer {keys['root']}"}
            r = await http.post(
                "/v1/knowledge", json={"name": "shared-kb", "shared": True}, headers=root
            )
            assert r.status_code == 200, r.text
            r = await http.post(
                "/v1/knowledge/shared-kb/documents",
                files=[("files", ("plan.txt", PLAN))],
                data={"access": "tenant:acme"},
                headers={"Authorization": f"Bearer {keys['acme-dev']}"},
            )
            assert r.status_code == 200 and r.json()["added"] == ["plan.txt"], r.text
            service = app.state.luodi.knowledge
            docs = service.list_documents("shared-kb")
            yield Kb(http, keys, service, docs[0].id)
    finally:
        await gateway.close()


async def test_widening_a_documents_access_lets_another_tenant_find_it(kb: Kb) -> None:
    assert await kb.hits("globex-dev") == []
    r = await kb.set_access("root", ["tenant:acme", "tenant:globex"])
    assert r.status_code == 200, r.text
    assert r.json()["access"] == ["tenant:acme", "tenant:globex"]
    assert await kb.hits("globex-dev") == ["plan.txt"]
    # Narrowed again: gone from globex's search at once.
    r = await kb.set_access("root", ["role:admin"])
    assert r.status_code == 200
    assert await kb.hits("globex-dev") == []
    assert await kb.hits("acme-analyst") == []  # role:admin of acme only now
    assert await kb.hits("root") == ["plan.txt"]


async def test_making_a_document_public_needs_publish(kb: Kb) -> None:
    r = await kb.set_access("acme-dev", ["public"])
    assert r.status_code == 403 and "publish" in r.json()["error"]["message"]
    r = await kb.set_access("acme-dev", ["tenant:globex"])
    assert r.status_code == 403
    assert await kb.hits("globex-dev") == []
    # Within its own tenant the owner may narrow or widen freely.
    r = await kb.set_access("acme-dev", ["role:developer"])
    assert r.status_code == 200 and r.json()["access"] == ["role:developer"]
    assert await kb.hits("acme-analyst") == []


async def test_another_tenant_or_a_reader_cannot_change_the_acl(kb: Kb) -> None:
    r = await kb.set_access("globex-dev", ["public"])
    assert r.status_code == 404  # the same answer as for a document that does not exist
    r = await kb.set_access("acme-analyst", ["tenant:acme"])
    assert r.status_code == 403  # no kb:shared-kb:write
    r = await kb.set_access("root", ["everyone"])
    assert r.status_code == 400 and "access tag" in r.json()["error"]["message"]
    docs = kb.service.list_documents("shared-kb")
    assert docs[0].access == ["tenant:acme"]


async def test_sources_are_listed_with_their_runs_in_the_callers_scope(
    kb: Kb, tmp_path: Path
) -> None:
    folder = tmp_path / "handbook"
    folder.mkdir()
    (folder / "hours.md").write_text("# Hours\n\nOpen nine to five.\n")
    acme = kb.service.add_source("shared-kb", [str(folder)], owner="tenant:acme")
    kb.service.add_source("shared-kb", [str(folder)], owner="tenant:globex", schedule="0 3 * * *")
    r = await kb.http.post(
        "/v1/knowledge/shared-kb/sync", json={"source_id": acme}, headers=kb.headers("acme-dev")
    )
    assert r.status_code == 200, r.text
    r = await kb.http.get("/v1/knowledge/shared-kb/sources", headers=kb.headers("acme-dev"))
    assert r.status_code == 200, r.text
    sources = r.json()["data"]
    assert [s["id"] for s in sources] == [acme]  # globex's source is not acme's to see
    run = sources[0]["runs"][0]
    assert (run["trigger"], run["added"], run["failed"]) == ("api", 1, {})
    assert sources[0]["last_sync_at"] and sources[0]["next_sync_at"] is None
    every = await kb.http.get("/v1/knowledge/shared-kb/sources", headers=kb.headers("root"))
    scheduled = [s for s in every.json()["data"] if s["schedule"]]
    assert len(every.json()["data"]) == 2 and scheduled[0]["next_sync_at"] > 0
    r = await kb.http.get("/v1/knowledge/shared-kb/sources", headers=kb.headers("acme-analyst"))
    assert r.status_code == 403  # reading sources is for those who may sync them
