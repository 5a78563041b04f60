"""``/v1/apps/risk``: through the gateway, RBAC, 400s naming fields, audit, the real model."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from luodi.config import KnowledgeSettings, Settings
from luodi.config.risk import RiskSettings
from luodi.engine.llamacpp.engine import LlamaCppEngine
from luodi.security import Gateway
from luodi.security.audit import AuditFilter
from luodi.security.principal import Limits
from tests.apps.risk.cases import card_testing_case, labelled_set
from tests.conftest import make_key, served


@dataclass
class RiskServer:
    url: str
    gateway: Gateway
    keys: dict[str, str]
    model: str

    def client(self, who: str) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=300)

    def records(self, user: str) -> list[dict[str, object]]:
        return self.gateway.audit_log.query(AuditFilter(user=user), limit=10_000)


@pytest.fixture(scope="module")
async def risk_server(
    engine: LlamaCppEngine, live_gateway: Gateway, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[RiskServer]:
    from luodi.api.app import create_app

    root = tmp_path_factory.mktemp("risk")
    settings = Settings(
        knowledge=KnowledgeSettings(data_dir=root / "kb"),
        risk=RiskSettings(data_dir=root / "risk", calibration_cases=0, neighbours=2),
    )
    app = create_app(settings, engines={engine.info.name: engine}, gateway=live_gateway)
    keys = {
        "risk-dev": make_key(live_gateway, "risk-dev", ["developer"]),
        "risk-analyst": make_key(live_gateway, "risk-analyst", ["analyst"]),
        "risk-auditor": make_key(live_gateway, "risk-auditor", ["auditor"]),
        "risk-limited": make_key(
            live_gateway, "risk-limited", ["analyst"], limits=Limits(requests_per_minute=1)
        ),
    }
    async with served(app) as url:
        yield RiskServer(url, live_gateway, keys, engine.info.name)


@pytest.fixture(scope="module")
async def trained(risk_server: RiskServer) -> RiskServer:
    async with risk_server.client("risk-dev") as client:
        response = await client.post(
            "/v1/apps/risk/fraud/train",
            json={"cases": labelled_set(30), "learners": ["logreg", "gbdt"]},
        )
    assert response.status_code == 200, response.text
    return risk_server


async def test_one_case_is_scored_with_the_contract_fields(trained: RiskServer) -> None:
    async with trained.client("risk-analyst") as client:
        response = await client.post("/v1/apps/risk/fraud/score", json=card_testing_case())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == "golden-1"
    assert 0 <= answer["risk_score"] <= 100 and 0.0 <= answer["probability"] <= 1.0
    assert answer["decision"] in {"approve", "review", "reject"}
    assert answer["learner"] == "logreg"
    assert all({"feature", "evidence"} == set(r) for r in answer["reasons"])


async def test_a_batch_is_scored_in_order_with_the_learner_asked_for(trained: RiskServer) -> None:
    cases = [{k: v for k, v in c.items() if k != "label"} for c in labelled_set(6, seed=7)]
    async with trained.client("risk-analyst") as client:
        response = await client.post(
            "/v1/apps/risk/fraud/score", json={"cases": cases, "learner": "gbdt"}
        )
    assert response.status_code == 200, response.text
    body = response.json()
    assert [a["id"] for a in body["data"]] == [c["id"] for c in cases]
    assert {a["learner"] for a in body["data"]} == {"gbdt"}


async def test_a_malformed_case_is_a_400_naming_the_field(trained: RiskServer) -> None:
    case = card_testing_case()
    case["events"][3]["ts"] = "not a time"
    async with trained.client("risk-analyst") as client:
        response = await client.post("/v1/apps/risk/fraud/score", json={"cases": [case]})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "cases[0].events[3].ts"
    assert "cases[0].events[3].ts" in error["message"]


async def test_training_with_one_class_only_is_a_400(risk_server: RiskServer) -> None:
    fraud = [c for c in labelled_set(10) if c["label"] == 1]
    async with risk_server.client("risk-dev") as client:
        response = await client.post("/v1/apps/risk/one-class/train", json={"cases": fraud})
    assert response.status_code == 400
    assert "both" in response.json()["error"]["message"]


async def test_scoring_and_training_are_separate_permissions(trained: RiskServer) -> None:
    async with trained.client("risk-analyst") as analyst:
        refused = await analyst.post(
            "/v1/apps/risk/fraud/train", json={"cases": labelled_set(4), "learners": "logreg"}
        )
        described = await analyst.get("/v1/apps/risk/fraud")
    assert refused.status_code == 403
    assert "risk:fraud:train" in refused.json()["error"]["message"]
    assert described.status_code == 200
    assert described.json()["labels"] == {"0": 15, "1": 15}
    async with trained.client("risk-auditor") as auditor:
        response = await auditor.post("/v1/apps/risk/fraud/score", json=card_testing_case())
    assert response.status_code == 403
    denied = [r for r in trained.records("risk-analyst") if r["decision"] == "denied"]
    assert any(r["endpoint"] == "/v1/apps/risk/fraud/train" for r in denied)


async def test_the_key_rate_limit_applies_to_risk_routes(trained: RiskServer) -> None:
    async with trained.client("risk-limited") as client:
        first = await client.get("/v1/apps/risk/fraud")
        second = await client.get("/v1/apps/risk/fraud")
    assert first.status_code == 200
    assert second.status_code == 429


async def test_every_decision_is_in_the_audit_chain(trained: RiskServer) -> None:
    async with trained.client("risk-analyst") as client:
        answer = (await client.post("/v1/apps/risk/fraud/score", json=card_testing_case())).json()
    [record] = [
        r
        for r in trained.records("risk-analyst")
        if r["kind"] == "risk.decision"
        and json.loads(str(r["detail_json"]))["decision_id"] == answer["decision_id"]
    ]
    detail = json.loads(str(record["detail_json"]))
    assert detail["learner"] == "logreg" and detail["risk_model"] == "fraud"
    assert detail["labelled_set"] == answer["labelled_set"]
    assert detail["inputs_sha256"] == record["prompt_sha256"]
    assert (detail["risk_score"], detail["decision"]) == (answer["risk_score"], answer["decision"])
    assert trained.gateway.audit_log.verify().ok


@pytest.mark.model
async def test_the_incontext_learner_decides_on_the_real_model_through_the_gateway(
    risk_server: RiskServer,
) -> None:
    async with risk_server.client("risk-dev") as client:
        trained = await client.post(
            "/v1/apps/risk/llm/train", json={"cases": labelled_set(6), "learners": ["incontext"]}
        )
        assert trained.status_code == 200, trained.text
        response = await client.post("/v1/apps/risk/llm/score", json=card_testing_case())
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["learner"] == "incontext"
    assert answer["decision"] in {"approve", "review", "reject"}
    assert 0.0 <= answer["probability"] <= 1.0
    assert len(answer["similar_cases"]) == 2
    present = {"account_age_days", "kyc_level"} | {
        line.split("]")[0][1:] for line in _narrative_ids()
    }
    assert {r["feature"] for r in answer["reasons"]} <= present
    records = risk_server.records("risk-dev")
    [decision] = [
        r
        for r in records
        if r["kind"] == "risk.decision"
        and json.loads(str(r["detail_json"]))["decision_id"] == answer["decision_id"]
    ]
    detail = json.loads(str(decision["detail_json"]))
    assert detail["probability_from"] == "decision-token-logprobs"
    # The LLM call went through the pipeline: its own record, on the model, on this route.
    chats = [
        r
        for r in records
        if r["kind"] == "request"
        and r["model"] == risk_server.model
        and r["endpoint"] == "/v1/apps/risk/llm/score"
    ]
    assert chats and chats[-1]["decision"] == "allowed"


def _narrative_ids() -> list[str]:
    from luodi.apps.risk.case import parse_cases
    from luodi.apps.risk.narrative import render

    return render(parse_cases([card_testing_case()])[0]).text.splitlines()
