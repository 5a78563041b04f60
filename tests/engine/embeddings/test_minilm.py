"""The numpy MiniLM gives sentence-transformers' vectors, batched or not."""

from __future__ import annotations

import re

import numpy as np
import pytest

from luodi.embedding import Embedder
from luodi.engine.embeddings import MINILM_INSTALL, MiniLMEmbedder, minilm_model_dir
from luodi.errors import ModelLoadError

# sentence-transformers' README quick start, model all-MiniLM-L6-v2:
# model.similarity(embeddings, embeddings) -> [[1, 0.6660, 0.1046], [.., 1, 0.1411], ..]
README_SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]
README_SIMILARITY = np.array(
    [[1.0, 0.6660, 0.1046], [0.6660, 1.0, 0.1411], [0.1046, 0.1411, 1.0]], dtype=np.float32
)


def test_similarities_match_sentence_transformers_reference(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(README_SENTENCES)
    np.testing.assert_allclose(vectors @ vectors.T, README_SIMILARITY, atol=2e-4)


def test_vectors_are_unit_float32_rows_of_384(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed(["a", "a much longer sentence about interest rates", "数据"])
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_batched_vector_equals_single_vector_despite_padding(minilm: MiniLMEmbedder) -> None:
    texts = [
        "short",
        "How do I reset the password of my online banking account?",
        "营业时间是周一至周五上午九点到下午五点。",
        " ".join(["long"] * 120),
    ]
    batched = minilm.embed(texts)
    for i, text in enumerate(texts):
        np.testing.assert_allclose(minilm.embed([text])[0], batched[i], atol=1e-5)


@pytest.mark.parametrize(
    ("query", "related", "unrelated"),
    [
        (
            "How do I reset my password?",
            "Steps to change a forgotten login password",
            "Our office is closed on public holidays",
        ),
        (
            "What is the interest rate of a savings account?",
            "Savings accounts earn 1.5% interest per year",
            "The printer on floor 3 is out of toner",
        ),
        (
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "A monkey is playing drums.",
        ),
    ],
)
def test_query_is_closer_to_related_than_unrelated_text(
    minilm: MiniLMEmbedder, query: str, related: str, unrelated: str
) -> None:
    q, r, u = minilm.embed([query, related, unrelated])
    assert float(q @ r) > float(q @ u) + 0.1


def test_long_input_is_truncated_to_256_word_pieces_not_rejected(minilm: MiniLMEmbedder) -> None:
    words = [f"word{i}" for i in range(600)]
    assert minilm.count_tokens([" ".join(words)])[0] > 256
    full = minilm.embed([" ".join(words)])
    extra = minilm.embed([" ".join([*words, "completely", "different", "tail"])])
    # Both are cut at 256 pieces, so the tail cannot change the vector.
    np.testing.assert_allclose(full, extra, atol=1e-6)
    assert minilm.max_tokens == 256


def test_token_counts_match_tokenize(minilm: MiniLMEmbedder) -> None:
    texts = ["hello world", "营业时间", ""]
    assert minilm.count_tokens(texts) == [len(minilm.tokenize(t)) for t in texts]
    assert minilm.count_tokens([]) == []


def test_empty_batch_gives_empty_matrix(minilm: MiniLMEmbedder) -> None:
    assert minilm.embed([]).shape == (0, 384)


def test_minilm_satisfies_embedder_protocol(minilm: MiniLMEmbedder) -> None:
    assert isinstance(minilm, Embedder)
    assert minilm.name == "all-minilm-l6-v2"


def test_missing_weights_package_error_gives_pip_command() -> None:
    with pytest.raises(ModelLoadError, match=re.escape(MINILM_INSTALL)):
        minilm_model_dir("luodi_no_such_minilm_package")
    assert "--no-deps" in MINILM_INSTALL
