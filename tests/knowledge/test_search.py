"""Ingested documents are found by hybrid search, within their access lists and filters."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kb_factories import FakePrincipal, fixture_files, make_docx, make_pdf, make_xlsx

from luodi.errors import InvalidRequestError, NotFoundError
from luodi.knowledge import KnowledgeService, rrf_fuse

Make = Callable[..., KnowledgeService]


@pytest.fixture
def faq(make_service: Make) -> KnowledgeService:
    service = make_service()
    service.create_collection("faq", owner="ops")
    files = [
        *fixture_files(),
        ("cards.pdf", make_pdf(["Lost cards must be reported within 24 hours by phone."])),
        ("wealth.docx", make_docx()),
        ("faq.xlsx", make_xlsx()),
    ]
    report = service.ingest("faq", files)
    assert not report.failed
    return service


@pytest.mark.parametrize(
    ("query", "document", "phrase"),
    [
        ("营业时间是几点到几点？", "faq_cn.md", "上午九点"),
        ("手机银行转账限额是多少", "faq_cn.md", "五万元"),
        ("How do I reset my online banking password?", "faq_en.txt", "Forgot password"),
        ("savings account interest rate", "faq_en.txt", "1.5%"),
        ("mortgage for energy efficient homes", "products.csv", "Green Mortgage"),
        ("I lost my card, how soon must I report it?", "cards.pdf", "24 hours"),
        ("minimum investment of the bond fund", "wealth.docx", "10,000"),
        ("信用卡最后还款日", "faq.xlsx", "第二十天"),
    ],
)
def test_question_finds_the_passage_that_answers_it(
    faq: KnowledgeService, query: str, document: str, phrase: str
) -> None:
    hits = faq.search(["faq"], query, top_k=3)
    assert any(h.document == document and phrase in h.text for h in hits), hits


def test_bad_file_is_reported_by_name_and_the_rest_is_kept(make_service: Make) -> None:
    service = make_service()
    service.create_collection("kb")
    report = service.ingest("kb", [("bad.pdf", b"garbage"), *fixture_files()[:2]])
    assert list(report.failed) == ["bad.pdf"]
    assert len(report.added) == 2
    assert [d.name for d in service.list_documents("kb")] == sorted(report.added)


def test_reingesting_same_content_is_unchanged(faq: KnowledgeService) -> None:
    report = faq.ingest("faq", fixture_files())
    assert report.added == [] and report.updated == []
    assert len(report.unchanged) == len(fixture_files())


def test_documents_with_access_list_are_hidden_from_other_departments(make_service: Make) -> None:
    service = make_service()
    service.create_collection("shared", shared=True)
    service.ingest(
        "shared",
        [("credit.txt", b"Internal credit limit policy: 5 million.")],
        access=["role:credit"],
    )
    service.ingest(
        "shared",
        [("retail.txt", b"Retail credit limit policy: 50 thousand.")],
        access=["tenant:retail"],
    )
    service.ingest("shared", [("public.txt", b"Public note: credit limits are reviewed yearly.")])
    query = "credit limit policy"

    def seen(principal: FakePrincipal) -> set[str]:
        return {h.document for h in service.search(["shared"], query, 10, principal=principal)}

    assert seen(FakePrincipal("retail", ["teller"])) == {"retail.txt", "public.txt"}
    assert seen(FakePrincipal("corp", ["credit"])) == {"credit.txt", "public.txt"}
    assert seen(FakePrincipal(None, [])) == {"public.txt"}
    assert {d.name for d in service.list_documents("shared", FakePrincipal(None, []))} == {
        "public.txt"
    }
    with pytest.raises(NotFoundError):
        service.get_document(
            "shared", service.list_documents("shared")[0].id, FakePrincipal(None, [])
        )


def test_metadata_filter_restricts_hits(make_service: Make) -> None:
    service = make_service()
    service.create_collection("kb")
    service.ingest(
        "kb", [("a.txt", b"Branch opening hours are nine to five.")], meta={"region": "north"}
    )
    service.ingest(
        "kb", [("b.txt", b"Branch opening hours are ten to six.")], meta={"region": "south"}
    )
    hits = service.search(["kb"], "opening hours", 5, meta={"region": "south"})
    assert [h.document for h in hits] == ["b.txt"]


def test_search_spans_several_collections(make_service: Make) -> None:
    service = make_service()
    for name, text in (("a", b"Alpha product manual."), ("b", b"Beta product manual.")):
        service.create_collection(name)
        service.ingest(name, [(f"{name}.txt", text)])
    assert {h.collection for h in service.search(["a", "b"], "product manual", 5)} == {"a", "b"}


def test_unknown_collection_and_bad_name_are_client_errors(make_service: Make) -> None:
    service = make_service()
    with pytest.raises(NotFoundError, match="'nope'"):
        service.search(["nope"], "x")
    with pytest.raises(InvalidRequestError, match="must be 1-64"):
        service.create_collection("bad name/..")


def test_index_survives_restart(make_service: Make) -> None:
    service = make_service()
    service.create_collection("kb")
    service.ingest("kb", fixture_files())
    service.close()
    reopened = make_service()
    assert reopened.search(["kb"], "营业时间", 1)[0].document == "faq_cn.md"


def test_rrf_rewards_agreement_between_rankings() -> None:
    fused = rrf_fuse([["a", "b", "c"], ["b", "c", "a"]], k=60)
    assert fused[0][0] == "b"
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
