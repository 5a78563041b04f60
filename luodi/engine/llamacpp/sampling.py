"""Per-sequence llama.cpp sampler chains built from SamplingParams."""

from __future__ import annotations

import ctypes
import math

import llama_cpp
import numpy as np

from luodi.engine.llamacpp.grammar import GrammarVocab, TokenMask
from luodi.engine.llamacpp.model import LlamaModel
from luodi.engine.types import SamplingParams, TokenLogprob
from luodi.errors import EngineError, InvalidRequestError

__all__ = ["SequenceSampler", "top_logprobs"]

# llama.cpp's llama_token_data: {int32 id; float logit; float p}, as a numpy record.
_TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)])


class SequenceSampler:
    """One request's sampler chain: bias, penalties, grammar, truncation, temperature, draw.

    Order follows llama.cpp's common sampler. Greedy requests without penalties skip the
    chain and take the argmax of the (biased) logits row: the same token, without the
    chain's per-token pass over a candidates array as large as the vocabulary (262k
    entries for Gemma 3), which costs more than a small model's decode.

    A grammar is an llguidance :class:`TokenMask`, not a llama.cpp grammar sampler, and
    the model's own choice is checked first, as llama.cpp's common sampler does: greedy
    requests take the row's argmax when the grammar allows it; sampled requests draw
    from the whole row and keep the token when the grammar allows it. Only a refused
    token costs a mask: then the best allowed token is taken, or the chain draws again
    from the allowed candidates only (without top-k/top-p/min-p this is exactly the
    masked distribution; with them, llama.cpp's server behaves the same). With
    penalties, whose state records each drawn token, the chain always runs on the
    allowed candidates only.

    Args:
        grammar_vocab: The model's vocabulary for llguidance; required with a grammar.
    """

    def __init__(
        self,
        model: LlamaModel,
        params: SamplingParams,
        default_seed: int,
        grammar_vocab: GrammarVocab | None = None,
    ) -> None:
        self._model = model
        self._chain: llama_cpp.llama_sampler_p | None = None
        self._mask: TokenMask | None = None
        self._draw_first = False
        bias = dict(params.logit_bias)
        if params.ignore_eos:
            for tok in model.eog_tokens:
                bias[tok] = -math.inf
        penalties = (
            params.repetition_penalty != 1.0
            or params.presence_penalty != 0.0
            or params.frequency_penalty != 0.0
        )
        self._bias_ids: np.ndarray | None = None
        self._bias_values: np.ndarray | None = None
        self._bias_set: frozenset[int] = frozenset()
        self._bias_lowers_only = True
        for tok in bias:
            if not 0 <= tok < model.n_vocab:
                raise InvalidRequestError(
                    f"logit_bias token id {tok} is outside the vocabulary (0..{model.n_vocab - 1})",
                    param="logit_bias",
                )
        if params.grammar:
            if params.ignore_eos:
                raise InvalidRequestError(
                    "ignore_eos cannot be combined with structured output: the grammar"
                    " ends the output",
                    param="ignore_eos",
                )
            if grammar_vocab is None:
                raise InvalidRequestError("this engine cannot enforce a grammar", param="grammar")
            self._mask = TokenMask(grammar_vocab, params.grammar)
        # Without penalties a draw changes no sampler state, so a refused one costs nothing.
        self._draw_first = not penalties
        if params.greedy and not penalties:
            if bias:
                self._bias_ids = np.fromiter(bias.keys(), dtype=np.intp, count=len(bias))
                self._bias_values = np.fromiter(bias.values(), dtype=np.float32, count=len(bias))
                self._bias_set = frozenset(bias)
                self._bias_lowers_only = bool((self._bias_values <= 0).all())
            return
        sparams = llama_cpp.llama_sampler_chain_default_params()
        sparams.no_perf = True
        chain = llama_cpp.llama_sampler_chain_init(sparams)
        self._chain = chain
        add = llama_cpp.llama_sampler_chain_add
        if bias:
            arr = (llama_cpp.llama_logit_bias * len(bias))()
            for i, (tok, value) in enumerate(bias.items()):
                arr[i].token = llama_cpp.llama_token(tok)
                arr[i].bias = value
            add(chain, llama_cpp.llama_sampler_init_logit_bias(model.n_vocab, len(bias), arr))
        if penalties:
            add(
                chain,
                llama_cpp.llama_sampler_init_penalties(
                    model.n_vocab,  # this llama.cpp still takes it first (include/llama.h)
                    params.penalty_last_n,
                    params.repetition_penalty,
                    params.frequency_penalty,
                    params.presence_penalty,
                ),
            )
        if params.greedy:
            add(chain, llama_cpp.llama_sampler_init_greedy())
            return
        if params.top_k > 0:
            add(chain, llama_cpp.llama_sampler_init_top_k(params.top_k))
        if params.top_p < 1.0:
            add(chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1))
        if params.min_p > 0.0:
            add(chain, llama_cpp.llama_sampler_init_min_p(params.min_p, 1))
        add(chain, llama_cpp.llama_sampler_init_temp(params.temperature))
        seed = params.seed if params.seed is not None else default_seed
        add(chain, llama_cpp.llama_sampler_init_dist(ctypes.c_uint32(seed & 0xFFFFFFFF).value))

    def sample(self, batch_index: int) -> int:
        """Pick (and accept) the next token from the logits of one batch position."""
        mask = self._mask
        if mask is None:
            if self._chain is None:
                return self._biased_argmax(self._model.logits(batch_index))
            return int(llama_cpp.llama_sampler_sample(self._chain, self._model.ctx, batch_index))
        row = self._model.logits(batch_index)
        if self._chain is None:
            # The model mostly wants what the grammar allows: check its choice first.
            token = self._biased_argmax(row)
            if mask.try_accept(token):
                return token
            mask.compute()
            token = self._biased_argmax_among(row, mask.allowed())
        else:
            if self._draw_first:
                token = int(
                    llama_cpp.llama_sampler_sample(self._chain, self._model.ctx, batch_index)
                )
                if mask.try_accept(token):
                    return token
            mask.compute()
            token = self._draw_among(self._chain, row, mask.allowed())
        mask.accept(token)
        return token

    def _biased_argmax_among(self, row: np.ndarray, ids: np.ndarray) -> int:
        """argmax(row + bias) over the token ids ``ids`` only."""
        values = row[ids]
        if self._bias_ids is not None and self._bias_values is not None:
            # Biased tokens that are among ``ids`` (both ascending after the sort).
            order = np.argsort(self._bias_ids)
            bias_ids, bias_values = self._bias_ids[order], self._bias_values[order]
            at = np.searchsorted(ids, bias_ids)
            hit = (at < ids.size) & (ids[np.minimum(at, ids.size - 1)] == bias_ids)
            values = values.copy()
            values[at[hit]] += bias_values[hit]
        return int(ids[int(np.argmax(values))])

    @staticmethod
    def _draw_among(chain: llama_cpp.llama_sampler_p, row: np.ndarray, ids: np.ndarray) -> int:
        """Run the chain on the candidates ``ids`` only, then accept the token it drew."""
        data = np.empty(ids.size, dtype=_TOKEN_DATA)
        data["id"] = ids
        data["logit"] = row[ids]
        data["p"] = 0.0
        candidates = llama_cpp.llama_token_data_array(
            data=data.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
            size=ids.size,
            selected=-1,
            sorted=False,
        )
        llama_cpp.llama_sampler_apply(chain, ctypes.byref(candidates))
        if not 0 <= candidates.selected < candidates.size:
            raise EngineError("the sampler chain selected no token")
        token = int(candidates.data[candidates.selected].id)
        llama_cpp.llama_sampler_accept(chain, token)
        return token

    def _biased_argmax(self, row: np.ndarray) -> int:
        """argmax(row + bias) without copying the row when the bias cannot change it."""
        best = int(np.argmax(row))
        ids, values = self._bias_ids, self._bias_values
        if ids is None or values is None:
            return best
        if best not in self._bias_set and (
            # Lowering other tokens cannot overtake the first maximum (ignore_eos bans).
            self._bias_lowers_only or (row[ids] + values).max() < row[best]
        ):
            return best
        # The row is llama.cpp's buffer, read again for logprobs: bias a copy.
        biased = row.copy()
        biased[ids] += values
        return int(np.argmax(biased))

    def close(self) -> None:
        if self._chain is not None:
            llama_cpp.llama_sampler_free(self._chain)
            self._chain = None


def top_logprobs(model: LlamaModel, batch_index: int, token: int, k: int) -> TokenLogprob:
    """The chosen token's log-probability under the model, with the ``k`` most likely."""
    logits = model.logits(batch_index).astype(np.float64)
    peak = logits.max()
    logsumexp = peak + math.log(float(np.exp(logits - peak).sum()))
    top: list[tuple[str, float]] = []
    if k > 0:
        idx = np.argpartition(-logits, k)[:k]
        idx = idx[np.argsort(-logits[idx])]
        top = [(_text(model, int(i)), float(logits[i] - logsumexp)) for i in idx]
    return TokenLogprob(_text(model, token), float(logits[token] - logsumexp), top)


def _text(model: LlamaModel, token: int) -> str:
    return model.piece(token).decode("utf-8", errors="replace")
