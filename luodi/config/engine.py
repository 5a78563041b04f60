"""Settings of the embedded llama.cpp engine."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

from luodi.config.models import AdapterSettings, EmbeddedModelSettings, PoolSettings

_LLAMA_MAX_SEQ = 256  # llama.cpp refuses a context with more sequence ids


def _default_threads() -> int:
    return max(1, os.cpu_count() or 1)


def _none_word(value: object) -> object:
    """Let an environment variable switch an optional number off: "none", "null", "off"."""
    if isinstance(value, str) and value.strip().lower() in {"", "none", "null", "off"}:
        return None
    return value


class SpeculativeSettings(BaseModel):
    """Prompt-lookup speculative decoding: draft tokens copied from the request's own
    context, verified in the same decode as the next token. Output is unchanged (greedy
    text identical, sampled text drawn from the same distribution); only speed differs."""

    enabled: bool = True
    """Draft where it pays (see ``max_batch``); a request opts out with
    ``"speculative": false``."""

    num_tokens: int = Field(default=8, ge=1, le=64)
    """Most draft tokens per sequence and step."""

    ngram_min: int = Field(default=2, ge=1)
    """Shortest context tail looked up earlier in the context."""

    ngram_max: int = Field(default=4, ge=1)
    """Longest context tail looked up (longer matches are tried first)."""

    max_batch: int = Field(default=8, ge=1)
    """Never draft while more sequences than this decode. Below it, each step takes the
    draft tokens that raise its expected tokens per second, from the measured cost of a
    step and each sequence's record of accepted drafts: many on a quoting answer, few or
    none on free text or in a large batch."""

    fixed_cost_tokens: float | None = Field(default=None, ge=0.0)
    """A decode step's cost beyond its tokens, in tokens. None: measured by the engine
    from its own steps, starting from 2 (a small model on a 2-core CPU; a GPU's is in
    the hundreds, which makes drafting nearly free). A number fixes it."""

    draft_model: Path | None = None
    """A small GGUF with the model's vocabulary (Qwen3-0.6B for a Qwen3-14B) that drafts
    by decoding a few tokens itself, instead of prompt lookup: it guesses free text too,
    at the price of its own decodes and memory. None: prompt lookup."""

    _fixed_cost_none = field_validator("fixed_cost_tokens", mode="before")(_none_word)

    @model_validator(mode="after")
    def _check_ngrams(self) -> SpeculativeSettings:
        if self.ngram_min > self.ngram_max:
            raise ValueError(
                f"engine.speculative.ngram_min ({self.ngram_min}) exceeds ngram_max"
                f" ({self.ngram_max})"
            )
        return self


class EngineSettings(BaseModel):
    """The in-process llama.cpp engine: model file, context, batching and caches."""

    model: Path | None = None
    """GGUF file to serve (plain or luodi-encrypted). None: the bundled Gemma-3-270M Q4_K_M."""

    model_name: str | None = None
    """Name clients use in the ``model`` field. None: the file name without ``.gguf``."""

    n_threads: int = Field(default_factory=_default_threads, ge=1)
    """CPU threads for token generation. Default: every core."""

    n_threads_batch: int | None = Field(default=None, ge=1)
    """CPU threads for prompt processing. None: same as ``n_threads``."""

    n_ctx: int = Field(default=16384, ge=256)
    """KV cache cells shared by all sequences and cached prefixes (one unified cache)."""

    max_model_len: int | None = Field(default=None, ge=16)
    """Longest prompt + completion of one request. None: min(training context, n_ctx)."""

    max_batch_size: int = Field(default=32, ge=1, le=256)
    """Most sequences decoded together in one step."""

    default_max_tokens: int | None = Field(default=None, ge=1)
    """Completion tokens for a chat request that sets neither ``max_tokens`` nor
    ``max_completion_tokens``, on every engine (upstreams too). None, as in OpenAI's
    API: up to the end of the context (an upstream is sent no ``max_tokens``; the one
    policy is ``luodi/engine/planning.py``). Token quotas reserve this many completion
    tokens per choice at admission (none when unset). No KV cells are reserved for
    them either way: a request takes cells as its answer grows, and when the cache is
    full the newest request of the lowest priority gives its cells back and is
    computed again later, without repeating what it streamed."""

    max_wait_ms: float = Field(default=2.0, ge=0)
    """How long an idle engine waits to gather arrivals into its first batch."""

    prefill_chunk: int = Field(default=512, ge=16)
    """Prompt tokens processed per step across all sequences (chunked prefill budget)."""

    step_slack: float | None = Field(default=0.25, ge=0.0)
    """While sequences decode, a step carries prompt tokens of new requests only up to
    what lengthens it by this fraction of its decode-only time (the engine measures
    both), or by ``step_slack_ms`` if that is more, so running streams keep a steady
    token cadence: at high concurrency inter-token latency p99/p50 stays near
    ``1 + step_slack``. The price is the first token of a request that arrives while
    others decode: its prompt is spread over more steps, up to ``1 + 1/step_slack``
    times its compute time. With nothing decoding a step takes ``prefill_chunk``.
    None: always up to ``prefill_chunk`` (first tokens sooner, a jerkier cadence).
    docs/performance.md has the trade-off."""

    step_slack_ms: float = Field(default=0.0, ge=0.0)
    """Extra time a step may always take for prompt tokens, however short its decodes
    (0: none beyond 16 tokens a step). A floor keeps long prompts moving at a few
    streams, where steps last tens of milliseconds; measured at 64 streams, a 60 ms
    floor raised ITL p99/p50 from 1.39 to 1.82 (docs/performance.md), hence off."""

    n_batch: int = Field(default=2048, ge=64)
    """llama.cpp logical batch size: the most tokens one ``llama_decode`` call may carry."""

    max_queue: int = Field(default=256, ge=1)
    """Most requests waiting for admission; beyond it requests get 429 with Retry-After."""

    prefix_cache: bool = True
    """Reuse the KV of a shared prompt prefix (system prompt, few-shot block, context)."""

    prefix_cache_slots: int = Field(default=16, ge=0)
    """Most finished prompts kept in the prefix cache (LRU); pinned warm prefixes come on top."""

    prefix_share_min_tokens: int = Field(default=32, ge=0)
    """Requests that arrive together and share at least this many leading prompt tokens
    (one system prompt, one retrieved context) compute them once: the others wait until
    the first has, then copy its KV. 0 disables the wait. A shorter share is cheaper to
    recompute than the extra step it would cost."""

    warm_prefixes: list[str] = Field(default_factory=list)
    """Texts computed at start-up and pinned in the prefix cache (never evicted)."""

    warm_prefix_file: Path | None = None
    """A file of hot prompts to pin as well: one per line, or a JSON list of strings."""

    pinned_prefixes_max: int = Field(default=4, ge=0)
    """Prompts apps pin at run time (each support assistant's persona and intent block,
    pinned as it loads; a reload replaces its pins): at most this many, and at most half
    of ``prefix_cache_slots``, whose slots they take. 0: none."""

    cache_dir: Path = Field(default_factory=lambda: Path.home() / ".cache" / "luodi")
    """Where the assembled default model and saved warm-prefix KV states live."""

    use_mlock: bool = False
    """Lock model weights in RAM so the OS never pages them out."""

    chat_template: str | None = None
    """Jinja chat template: a file path or a literal. None: the template inside the GGUF."""

    seed: int = 0
    """Default sampling seed when a request gives none."""

    batch_invariant: bool = True
    """Greedy output identical alone or in any batch: kernels whose results do not depend
    on batch size (no weight repacking, no tiled matmul, a Q8_0 KV cache that keeps
    attention on one kernel). Costs a few percent of single-stream and 5-15% of 32-stream
    decode speed on a 2-core AVX-512 machine, and half of long-prompt prefill speed (173
    against 338 tokens/s for a 1,024-token prompt there, mostly attention: the tiled
    flash-attention kernel takes only F16 caches). Off: llama.cpp's default kernels and an
    F16 KV cache; greedy text may then change with concurrency."""

    speculative: SpeculativeSettings = Field(default_factory=SpeculativeSettings)
    """Speculative decoding by prompt lookup (answers that quote their context)."""

    adapters: list[AdapterSettings] = Field(default_factory=list)
    """LoRA adapters of the default model; a request picks one as ``model:adapter``."""

    models: list[EmbeddedModelSettings] = Field(default_factory=list)
    """More GGUF models to serve beside ``model`` (which stays loaded, pinned): each with
    its own name, aliases, sizes, keep-alive and adapters (``luodi.config.models``)."""

    pool: PoolSettings = Field(default_factory=PoolSettings)
    """Memory budget and keep-alive of the embedded models."""

    _step_slack_none = field_validator("step_slack", mode="before")(_none_word)

    def for_model(self, entry: EmbeddedModelSettings) -> EngineSettings:
        """These settings with ``entry``'s file, name and sizes in place (checked again)."""
        data = self.model_dump(exclude={"models"})
        data["model"] = entry.path
        data["model_name"] = entry.name
        data["warm_prefixes"] = []  # warm prefixes are the default model's
        data["warm_prefix_file"] = None
        data["adapters"] = [a.model_dump() for a in entry.adapters]
        for field in (
            "n_ctx",
            "max_model_len",
            "n_threads",
            "n_threads_batch",
            "max_batch_size",
            "n_batch",
            "prefill_chunk",
            "chat_template",
        ):
            value = getattr(entry, field)
            if value is not None:
                data[field] = value
        if entry.n_ctx is not None and entry.max_model_len is None:
            data["max_model_len"] = None
        try:
            return EngineSettings.model_validate(data)
        except ValueError as exc:
            raise ValueError(f"engine.models '{entry.name}': {exc}") from None

    @model_validator(mode="after")
    def _check_models(self) -> EngineSettings:
        seen: dict[str, str] = {}
        for entry in self.models:
            for name in (entry.name, *entry.aliases):
                if name in seen:
                    raise ValueError(
                        f"engine.models: the name '{name}' of model '{entry.name}' is"
                        f" already taken by model '{seen[name]}'"
                    )
                seen[name] = entry.name
            self.for_model(entry)
        return self

    @model_validator(mode="after")
    def _check_sizes(self) -> EngineSettings:
        if self.max_model_len is not None and self.max_model_len > self.n_ctx:
            raise ValueError(
                f"engine.max_model_len ({self.max_model_len}) exceeds engine.n_ctx ({self.n_ctx})"
            )
        cached = self.prefix_cache_slots + len(self.warm_prefixes) if self.prefix_cache else 0
        if self.max_batch_size + cached > _LLAMA_MAX_SEQ:
            raise ValueError(
                f"engine.max_batch_size ({self.max_batch_size}) + prefix_cache_slots"
                f" ({self.prefix_cache_slots}) + warm_prefixes ({len(self.warm_prefixes)}) need"
                f" {self.max_batch_size + cached} llama.cpp sequence ids; it has {_LLAMA_MAX_SEQ}"
            )
        if self.n_batch < self.prefill_chunk + self.max_batch_size:
            raise ValueError(
                f"engine.n_batch ({self.n_batch}) must hold prefill_chunk ({self.prefill_chunk})"
                f" + max_batch_size ({self.max_batch_size}) tokens"
            )
        return self
