"""The service on the tabular learners: training, persistence across restarts, replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from luodi.apps.risk.case import parse_cases, parse_labelled
from luodi.apps.risk.features import feature_table
from luodi.apps.risk.learners import Tools
from luodi.apps.risk.service import RiskService
from luodi.config.risk import RiskSettings
from luodi.errors import InvalidRequestError, NotFoundError
from luodi.security import AuditEvent
from tests.apps.risk.cases import card_testing_case, labelled_set


def _service(root: Path, sink: list[AuditEvent] | None = None) -> RiskService:
    async def audit(event: AuditEvent) -> None:
        if sink is not None:
            sink.append(event)

    return RiskService(RiskSettings(data_dir=root), audit=audit)


@pytest.mark.parametrize("learner", ["logreg", "gbdt"])
async def test_a_tabular_learner_separates_card_testing(tmp_path: Path, learner: str) -> None:
    service = _service(tmp_path)
    report = await service.train("fraud", parse_labelled(labelled_set(40)), [learner], Tools())
    assert report["labels"] == {"0": 20, "1": 20}
    assert report["learners"][learner]["cv_auc"] >= 0.9
    [answer] = await service.score("fraud", parse_cases([card_testing_case()]), Tools())
    assert answer.decision in ("review", "reject")
    assert answer.probability > 0.5
    assert answer.reasons and all(
        r.feature in feature_table(parse_cases([card_testing_case()])[0]) for r in answer.reasons
    )


async def test_trained_learners_survive_a_restart(tmp_path: Path) -> None:
    first = _service(tmp_path)
    await first.train("fraud", parse_labelled(labelled_set(30)), ["logreg", "gbdt"], Tools())
    cases = parse_cases([card_testing_case()])
    before = await first.score("fraud", cases, Tools(), learner="gbdt")
    again = _service(tmp_path)  # a new process: nothing in memory
    after = await again.score("fraud", cases, Tools(), learner="gbdt")
    assert after[0].probability == before[0].probability
    assert set(again.describe("fraud")["learners"]) == {"logreg", "gbdt"}


async def test_every_decision_is_audited_and_replays_to_the_same_answer(tmp_path: Path) -> None:
    records: list[AuditEvent] = []
    service = _service(tmp_path, records)
    await service.train("fraud", parse_labelled(labelled_set(30)), ["logreg"], Tools())
    [answer] = await service.score("fraud", parse_cases([card_testing_case()]), Tools())
    [decision] = [r for r in records if r.kind == "risk.decision"]
    assert decision.detail["decision_id"] == answer.decision_id
    assert decision.detail["learner"] == "logreg"
    assert decision.detail["labelled_set"] == answer.labelled_set
    assert decision.prompt_sha256 == decision.detail["inputs_sha256"]
    assert decision.detail["decision"] == answer.decision
    assert [r["feature"] for r in decision.detail["reasons"]] == [r.feature for r in answer.reasons]
    assert answer.decision_id is not None
    replay = await _service(tmp_path).replay(answer.decision_id, Tools())
    assert replay["matches"] is True


async def test_adding_cases_makes_a_new_labelled_set_version(tmp_path: Path) -> None:
    service = _service(tmp_path)
    items = parse_labelled(labelled_set(30))
    first = await service.train("fraud", items[:20], ["logreg"], Tools())
    second = await service.train("fraud", items[20:], ["logreg"], Tools())
    assert first["labelled_set"] != second["labelled_set"]
    assert sum(second["labels"].values()) == 30
    assert service.describe("fraud")["history"] == [first["labelled_set"], second["labelled_set"]]


async def test_training_on_one_class_is_refused_before_anything_is_kept(tmp_path: Path) -> None:
    service = _service(tmp_path)
    fraud_only = [c for c in parse_labelled(labelled_set(12)) if c.label == 1]
    with pytest.raises(InvalidRequestError, match="both"):
        await service.train("fraud", fraud_only, ["logreg"], Tools())
    with pytest.raises(NotFoundError):
        service.describe("fraud")


async def test_an_untrained_learner_is_a_404_naming_what_is_trained(tmp_path: Path) -> None:
    service = _service(tmp_path)
    await service.train("fraud", parse_labelled(labelled_set(20)), ["logreg"], Tools())
    with pytest.raises(NotFoundError, match=r"no trained 'gbdt' learner \(trained: logreg\)"):
        await service.score("fraud", parse_cases([card_testing_case()]), Tools(), learner="gbdt")


async def test_the_llm_learners_need_their_models(tmp_path: Path) -> None:
    service = _service(tmp_path)
    with pytest.raises(Exception, match="needs an embedding model"):
        await service.train("fraud", parse_labelled(labelled_set(10)), ["probe"], Tools())


async def test_the_probe_learns_from_narrative_embeddings_and_cites_lines(tmp_path: Path) -> None:
    from luodi.apps.risk.clients import LocalEmbeddings
    from luodi.config.embeddings import EmbeddingSettings
    from luodi.engine.embeddings import build_embedder

    tools = Tools(embeddings=LocalEmbeddings(build_embedder(EmbeddingSettings())))
    service = _service(tmp_path)
    await service.train("fraud", parse_labelled(labelled_set(20)), ["probe"], tools)
    learner, _ = service.learner("fraud", "probe")
    case = parse_cases([card_testing_case()])[0]
    [quick] = await learner.score([case], tools, explain=False)
    [explained] = await learner.score([case], tools)
    assert quick.probability == pytest.approx(explained.probability)
    assert quick.reasons == []
    assert explained.reasons and {r.feature for r in explained.reasons} <= set(feature_table(case))
