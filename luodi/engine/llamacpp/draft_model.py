"""Draft-model speculation: a small model of the same vocabulary guesses the next tokens.

Prompt lookup only helps where the answer copies its context. A small model of the
same family (Qwen3-0.6B for Qwen3-14B) guesses free text too: it decodes a few tokens
greedily, one at a time in its own llama.cpp context, and the large model verifies them
in one batch as it does prompt-lookup drafts. The draft context keeps each sequence's
KV under the same sequence id as the engine's and follows what the sequence really
became: before drafting it drops the positions that differ from the sequence's tokens
(rejected guesses) and computes the ones it lacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from luodi.engine.llamacpp.model import LlamaModel
from luodi.engine.llamacpp.sequence import Sequence
from luodi.errors import ModelLoadError

__all__ = ["DraftModel", "check_vocab"]

_VOCAB_CHECK = 4096  # token texts compared, as llama.cpp's speculative example does


@dataclass(slots=True)
class _Fed:
    """What the draft context holds for one sequence id, and for which request."""

    request_id: str
    tokens: list[int] = field(default_factory=list)


class DraftModel:
    """A small GGUF in a context of its own, proposing greedy drafts for sequences.

    Args:
        path: The draft GGUF; its vocabulary must be the target's (checked).
        target: The engine's model.
        n_seq: Sequence ids, the engine's running ones (the same ids are used here).
    """

    def __init__(self, path: Path, target: LlamaModel, n_seq: int) -> None:
        # The target's context sizes and kernels; ids for its running sequences only.
        self.model = LlamaModel(path, replace(target.params, n_seq_max=n_seq, embeddings=False))
        try:
            check_vocab(self.model, target)
        except ModelLoadError:
            self.model.close()
            raise
        self._fed: dict[int, _Fed] = {}
        self._memo: dict[int, tuple[str, int, int, list[int]]] = {}
        """Sequence id → the last draft made for it, keyed by request, length and k."""

    def propose(self, seq: Sequence, k: int) -> list[int]:
        """Up to ``k`` tokens the draft model expects after ``seq``'s tokens, greedily."""
        if k <= 0 or seq.seq_id is None:
            return []
        key = (seq.request_id, seq.num_tokens, k)
        memo = self._memo.get(seq.seq_id)
        if memo is not None and memo[:3] == key:
            return list(memo[3])  # the scheduler planned this step twice
        draft = self._draft(seq.seq_id, seq.request_id, seq.all_tokens, k)
        self._memo[seq.seq_id] = (*key, draft)
        return list(draft)

    def _draft(self, seq_id: int, request_id: str, tokens: list[int], k: int) -> list[int]:
        model = self.model
        fed = self._fed.get(seq_id)
        if fed is None or fed.request_id != request_id:
            model.seq_remove(seq_id)
            fed = self._fed[seq_id] = _Fed(request_id)
        # Keep what still matches the sequence (its rejected guesses go), then catch up.
        same = 0
        limit = min(len(fed.tokens), len(tokens) - 1)
        while same < limit and fed.tokens[same] == tokens[same]:
            same += 1
        if same < len(fed.tokens):
            model.seq_remove(seq_id, same)
            del fed.tokens[same:]
        pending = tokens[same:]
        batch = model.params.n_batch
        while len(pending) > batch:
            self._decode(seq_id, fed, pending[:batch], want_last=False)
            pending = pending[batch:]
        if not self._decode(seq_id, fed, pending, want_last=True):
            return []
        draft: list[int] = []
        eog = model.eog_tokens
        while True:
            token = int(np.argmax(model.logits(0 if len(draft) else len(pending) - 1)))
            draft.append(token)
            if len(draft) == k or token in eog:
                return draft
            if not self._decode(seq_id, fed, [token], want_last=True):
                return draft

    def _decode(self, seq_id: int, fed: _Fed, tokens: list[int], *, want_last: bool) -> bool:
        start = len(fed.tokens)
        items = [
            (tok, start + i, seq_id, want_last and i == len(tokens) - 1)
            for i, tok in enumerate(tokens)
        ]
        if self.model.decode(items) != 0:
            # The context is full of finished sequences' positions: drop them, retry once.
            for other in [i for i in self._fed if i != seq_id]:
                self.model.seq_remove(other)
                del self._fed[other]
            if self.model.decode(items) != 0:
                self.model.seq_remove(seq_id)
                fed.tokens.clear()
                return False
        fed.tokens.extend(tokens)
        return True

    def close(self) -> None:
        self.model.close()


def check_vocab(draft: LlamaModel, target: LlamaModel) -> None:
    """Refuse a draft model whose tokens mean other text than the target's."""
    if draft.n_vocab != target.n_vocab:
        raise ModelLoadError(
            f"the draft model {draft.path.name} has {draft.n_vocab} tokens and the model"
            f" {target.path.name} {target.n_vocab}: speculation needs one vocabulary"
        )
    step = max(1, target.n_vocab // _VOCAB_CHECK)
    for token in range(0, target.n_vocab, step):
        if draft.piece(token) != target.piece(token):
            raise ModelLoadError(
                f"token {token} of the draft model {draft.path.name} is"
                f" {draft.piece(token)!r}, of {target.path.name} {target.piece(token)!r}:"
                " speculation needs one vocabulary"
            )
