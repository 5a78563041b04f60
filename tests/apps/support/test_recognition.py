"""Intent recognition on the bundled embedding model, its metrics, and the webhook URL guard."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from luodi.apps.support import OUT_OF_SCOPE, IntentModel, load_assistant
from luodi.apps.support.classifier import Calibrator, Classification
from luodi.apps.support.evaluation import LabelledUtterance, score
from luodi.apps.support.glossary import default_glossary
from luodi.apps.support.lexical import language_of, terms
from luodi.apps.support.model_states import ModelStates
from luodi.apps.support.webhook import WebhookError, check_webhook_url
from luodi.cli.main import app
from luodi.config import EmbeddingSettings, SupportSettings
from luodi.engine.embeddings import build_embedder
from luodi.engine.llamacpp.hidden_states import HiddenStates
from tests.apps.support.conftest import CORPUS
from tests.conftest import default_gguf


@pytest.fixture(scope="module")
def shop_model() -> IntentModel:
    assistant = load_assistant(CORPUS / "shop.yaml")
    return IntentModel(assistant, build_embedder(EmbeddingSettings()), glossary=default_glossary)


def test_chinese_is_indexed_by_characters_bigrams_and_words() -> None:
    found = terms("退款多久到账")
    assert {"退", "退款", "w:退款", "到账"} <= set(found)
    assert "refund" in terms("Refunds please") and language_of("退款") == "zh"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("我想退钱", "refund"),
        ("能开增值税发票吗", "invoice"),
        ("where's my parcel", "order_status"),
        ("tell me a funny joke", OUT_OF_SCOPE),
    ],
)
def test_nearest_examples_find_the_intent(shop_model: IntentModel, text: str, intent: str) -> None:
    result = shop_model.classify(text)
    assert result.intent == intent
    assert result.path == "knn"
    assert 0.0 < result.confidence < 1.0
    assert sum(p for _, p in result.alternatives) <= 1.0 - result.confidence + 1e-6


def test_confidence_is_calibrated_on_held_out_examples(shop_model: IntentModel) -> None:
    # Cross-validation over the configured examples is what the calibrator learns from.
    assert shop_model.cv_accuracy > 0.7
    assert shop_model.calibrator.probability(0.9, 0.5) > shop_model.calibrator.probability(
        0.3, 0.01
    )


def test_chinese_reaches_the_english_embedder_through_its_gloss(shop_model: IntentModel) -> None:
    # The bundled embedder knows English only: on the shop's examples, cross-validation
    # finds the English gloss of Chinese utterances better than the characters.
    assert shop_model.choice.gloss
    assert "refund" in default_glossary().gloss("退款多久到账")
    # Words the examples never use reach the intent through their meaning.
    assert shop_model.classify("在哪里申请开票").intent == "invoice"
    assert shop_model.classify("你们用哪家快递").intent == "delivery_time"


@pytest.fixture(scope="module")
def model_states() -> Iterator[HiddenStates]:
    reader = HiddenStates(default_gguf())
    yield reader
    reader.close()


@pytest.fixture(scope="module")
def shop_model_on_states(model_states: HiddenStates) -> IntentModel:
    assistant = load_assistant(CORPUS / "shop.yaml")
    embedder = build_embedder(EmbeddingSettings())
    return IntentModel(assistant, embedder, glossary=default_glossary, states=model_states)


def _accuracy(model: IntentModel, rows: list[dict[str, str]]) -> float:
    return float(np.mean([model.classify(r["text"]).intent == r["intent"] for r in rows]))


def test_the_chat_models_hidden_states_are_learnt_where_they_help(
    shop_model: IntentModel, shop_model_on_states: IntentModel
) -> None:
    # Cross-validation on the shop's examples takes a layer of Gemma-3-270M (which reads
    # Chinese, where the bundled embedder does not) because it classifies held-out
    # examples better; the dev set, never used to choose, agrees on Chinese utterances.
    choice = shop_model_on_states.choice
    assert choice.layer in (4, 6, 9, 12) and choice.layer_weight > 0
    assert choice.cv_accuracy > shop_model.cv_accuracy
    dev = [json.loads(line) for line in (CORPUS / "dev.jsonl").read_text().splitlines()]
    chinese = [r for r in dev if language_of(r["text"]) == "zh"]
    assert _accuracy(shop_model_on_states, chinese) > _accuracy(shop_model, chinese) + 0.03
    result = shop_model_on_states.classify("退款申请提交了多久能到账")
    assert result.intent == "refund" and result.path == "knn"


@pytest.mark.parametrize("text", ["订单号 2024112300001234", "my order number is 2024112300001234"])
def test_a_long_number_does_not_drown_the_words_around_it(
    shop_model_on_states: IntentModel, text: str
) -> None:
    # Gemma reads a digit a token: sixteen of them would outweigh "订单号" in the mean.
    result = shop_model_on_states.classify(text)
    assert result.intent == "order_status" and result.confidence > 0.8


def test_model_features_are_not_read_when_off_or_from_too_large_a_model(tmp_path: Path) -> None:
    assert ModelStates(SupportSettings(model_features="off")).for_file(default_gguf()) is None
    small_limit = ModelStates(SupportSettings(model_features_max_gb=0.1))
    assert small_limit.for_file(default_gguf(), default_gguf().stat().st_size) is None
    unreadable = tmp_path / "broken.gguf"
    unreadable.write_bytes(b"GGUF" + b"\0" * 64)
    readers = ModelStates(SupportSettings())
    assert readers.for_file(unreadable) is None  # logged; intents are learnt without
    readers.close()


def test_a_calibrator_with_no_errors_keeps_a_monotone_prior() -> None:
    calibrator = Calibrator().fit(np.array([[0.5, 0.1], [0.6, 0.2]]), np.ones(2))
    assert calibrator.probability(0.9, 0.4) > calibrator.probability(0.2, 0.0)


def test_scores_count_accuracy_macro_f1_and_out_of_scope() -> None:
    gold = [
        LabelledUtterance("a", "refund"),
        LabelledUtterance("b", "refund"),
        LabelledUtterance("c", OUT_OF_SCOPE),
        LabelledUtterance("d", "invoice"),
    ]
    said = [
        Classification("refund", 0.9),
        Classification(OUT_OF_SCOPE, 0.6, path="llm"),
        Classification(OUT_OF_SCOPE, 0.8),
        Classification("invoice", 0.7),
    ]
    report = score(gold, said)
    assert report.accuracy == 0.75
    assert report.oos_precision == 0.5 and report.oos_recall == 1.0
    assert report.confusion["refund"] == {"refund": 1, OUT_OF_SCOPE: 1}
    assert report.paths["llm"]["share"] == 0.25
    assert round(report.macro_f1, 4) == round((2 / 3 + 2 / 3 + 1.0) / 3, 4)
    # The report names what was misread, so an operator knows which examples to add.
    assert report.wire()["mistakes"] == [
        {
            "text": "b",
            "intent": "refund",
            "predicted": OUT_OF_SCOPE,
            "confidence": 0.6,
            "path": "llm",
        }
    ]


@pytest.mark.parametrize(
    "url",
    ["http://8.8.8.8/orders", "http://169.254.169.254/latest/meta-data", "http://[fe80::1]/x"],
)
def test_webhooks_outside_the_local_network_are_refused(url: str) -> None:
    with pytest.raises(WebhookError, match=r"support\.allow_"):
        check_webhook_url(url, SupportSettings())


def test_eval_command_prints_metrics_and_writes_json(tmp_path: Path) -> None:
    data = tmp_path / "few.jsonl"
    rows = [
        {"text": "我想退钱", "intent": "refund"},
        {"text": "tell me a funny joke", "intent": OUT_OF_SCOPE},
    ]
    data.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows), encoding="utf-8")
    out = tmp_path / "report.json"
    ran = CliRunner().invoke(
        app,
        [
            "support",
            "eval",
            "--assistant",
            str(CORPUS / "shop.yaml"),
            "--data",
            str(data),
            "--no-llm",
            "-o",
            str(out),
        ],
    )
    assert ran.exit_code == 0, ran.output
    assert "accuracy" in ran.output and "confusion" in ran.output
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["total"] == 2 and "macro_f1" in report and "out_of_scope" in report
    # The first layer read the default model's hidden states (--no-llm asks no judge).
    assert report["features"]["model_layer"] in (4, 6, 9, 12)


def test_check_command_names_the_line_of_a_malformed_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: shop\nintents:\n  - name: refund\n    examples: [退款\n", "utf-8")
    ran = CliRunner().invoke(app, ["support", "check", "--assistant", str(bad)])
    assert ran.exit_code == 2
    assert ran.output.strip().startswith(f"error: {bad}:")
    assert len(ran.output.strip().splitlines()) == 1
