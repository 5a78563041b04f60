"""The knowledge ACL at the service: grounding, adoption of untenanted documents, sharing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kb_factories import FakePrincipal

from luodi.errors import NotFoundError, PermissionDeniedError
from luodi.knowledge import KnowledgeService
from luodi.knowledge.access import Caller

Make = Callable[..., KnowledgeService]
MANAGER = Caller("ops", may=lambda p: p.endswith((":manage", ":publish")))


async def test_grounding_never_reads_another_tenants_collection(make_service: Make) -> None:
    service = make_service()
    service.create_collection("acme-faq", owner="acme")
    service.ingest("acme-faq", [("plan.txt", b"Acme plans to acquire Initech in March.")])
    messages = [{"role": "user", "content": "Who will Acme acquire?"}]
    with pytest.raises(NotFoundError):
        await service.ground(messages, ["acme-faq"], 3, FakePrincipal("globex", ["analyst"]))
    _, citations = await service.ground(messages, ["acme-faq"], 3, FakePrincipal("acme", []))
    assert citations and "Initech" in citations[0].snippet


def test_adopted_role_documents_are_narrowed_to_the_new_tenant_in_both_indexes(
    make_service: Make,
) -> None:
    service = make_service()
    service.create_collection("hr")  # no tenant: as a catalog from before tenancy
    service.ingest(
        "hr", [("pay.txt", b"Salary bands for 2026: grade 7 earns 40k.")], access=["role:hr"]
    )
    service.update_collection("hr", caller=MANAGER, tenant="acme")
    service.update_collection("hr", caller=MANAGER, shared=True)
    query = "salary bands grade 7"
    seen = {
        who: {h.document for h in service.search(["hr"], query, 5, principal=p)}
        for who, p in {
            "acme hr": FakePrincipal("acme", ["hr"]),
            "globex hr": FakePrincipal("globex", ["hr"]),
            "acme dev": FakePrincipal("acme", ["developer"]),
        }.items()
    }
    assert seen == {"acme hr": {"pay.txt"}, "globex hr": set(), "acme dev": set()}
    service.close()
    reopened = make_service()  # the BM25 index is rebuilt from the catalog: still narrowed
    assert not reopened.search(["hr"], query, 5, principal=FakePrincipal("globex", ["hr"]))


def test_only_the_owning_tenant_may_unshare(make_service: Make) -> None:
    service = make_service()
    service.create_collection("common", owner="acme", shared=True)
    globex_publisher = Caller("globex", may=lambda p: p.endswith(":publish"))
    with pytest.raises(PermissionDeniedError):
        service.update_collection("common", caller=globex_publisher, shared=False)
    acme_publisher = Caller("acme", may=lambda p: p.endswith(":publish"))
    assert service.update_collection("common", caller=acme_publisher, shared=False).shared is False
