"""Settings of the embedded model pool: several GGUF models behind one server.

``engine.models`` lists the models ``luodi serve`` may run besides the default one
(``engine.model``, always loaded and pinned). Each entry overrides the engine's
context, threads and batch sizes for itself; an entry that leaves a field unset
gets the engine's value. ``engine.pool`` holds the memory budget and the default
keep-alive that decide when on-demand models load and unload (``luodi.engine.pool``).
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import BaseModel, Field, field_validator, model_validator

__all__ = ["AdapterSettings", "EmbeddedModelSettings", "PoolSettings"]

_MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")
_ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def _check_name(value: str, what: str, pattern: re.Pattern[str] = _MODEL_NAME) -> str:
    if not pattern.match(value):
        allowed = ". _ / -" if pattern is _MODEL_NAME else ". _ -"
        raise ValueError(
            f"{what} {value!r} must start with a letter or digit and hold only letters,"
            f" digits and {allowed} (':' joins a model and its adapter: 'model:adapter')"
        )
    return value


class AdapterSettings(BaseModel):
    """A GGUF LoRA adapter a model serves; requests pick it as ``model:adapter``."""

    name: str = Field(min_length=1)
    """Name after the colon in the request's ``model`` field."""

    path: Path
    """The adapter's GGUF file (``adapter.type = lora``), made for this base model."""

    scale: float = Field(default=1.0, gt=0, le=16)
    """Multiplier on the adapter's low-rank delta (llama.cpp's ``--lora-scaled``)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "adapter name", _ADAPTER_NAME)


class EmbeddedModelSettings(BaseModel):
    """One more GGUF model the embedded engine serves; unset sizes take ``engine``'s."""

    name: str = Field(min_length=1)
    """Name clients use in the ``model`` field (unique across models and aliases)."""

    path: Path | None = None
    """GGUF file (plain or luodi-encrypted). None: the bundled default model."""

    aliases: list[str] = Field(default_factory=list)
    """Other names that reach this model (RBAC checks the name the client sent)."""

    n_ctx: int | None = Field(default=None, ge=256)
    """KV cache cells of this model's context. None: ``engine.n_ctx``."""

    max_model_len: int | None = Field(default=None, ge=16)
    """Longest prompt + completion. None: min(training context, n_ctx)."""

    n_threads: int | None = Field(default=None, ge=1)
    """CPU threads for generation. None: ``engine.n_threads``."""

    n_threads_batch: int | None = Field(default=None, ge=1)
    """CPU threads for prompt processing. None: ``engine.n_threads_batch``."""

    max_batch_size: int | None = Field(default=None, ge=1, le=256)
    """Most sequences decoded together. None: ``engine.max_batch_size``."""

    n_batch: int | None = Field(default=None, ge=64)
    """Most tokens one ``llama_decode`` call carries. None: ``engine.n_batch``."""

    prefill_chunk: int | None = Field(default=None, ge=16)
    """Prompt tokens per step (chunked prefill). None: ``engine.prefill_chunk``."""

    chat_template: str | None = None
    """Jinja chat template, a file or a literal. None: the template inside the GGUF."""

    pinned: bool = False
    """Loaded at start-up and never unloaded for idleness or evicted for another model.
    False: loaded by its first request (as Ollama does) and unloaded after keep-alive."""

    keep_alive_s: float | None = Field(default=None, ge=0)
    """Seconds an idle on-demand model stays loaded. None: ``engine.pool.keep_alive_s``."""

    adapters: list[AdapterSettings] = Field(default_factory=list)
    """LoRA adapters of this model (more can be added at run time through /admin)."""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return _check_name(value, "model name")

    @field_validator("aliases")
    @classmethod
    def _aliases(cls, values: list[str]) -> list[str]:
        return [_check_name(v, "model alias") for v in values]

    @model_validator(mode="after")
    def _check(self) -> EmbeddedModelSettings:
        names = [a.name for a in self.adapters]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"model '{self.name}': adapter names repeat: {', '.join(dupes)}")
        return self


class PoolSettings(BaseModel):
    """When on-demand models load and unload."""

    memory_budget_mb: float | None = Field(default=None, gt=0)
    """RAM the embedded models may hold together: weights (the GGUF's tensor data) plus
    the KV cache of each model's ``n_ctx`` cells plus its logits buffer, computed from
    the GGUF before loading. Before a load would exceed it, the least recently used idle
    on-demand model is unloaded; a model that cannot fit even then is refused with 507
    naming the numbers. None: 90% of this machine's physical memory."""

    keep_alive_s: float = Field(default=300.0, ge=0)
    """Seconds an on-demand model stays loaded after its last request (Ollama's default:
    five minutes). 0 unloads it as soon as it is idle."""

    adapter_dir: Path | None = None
    """Folder that LoRA adapters added at run time (``POST /admin/models/{name}/adapters``)
    must lie in. None: adding adapters at run time is off (the server reads no file an
    API caller names); adapters in the configuration load either way."""

    model_dir: Path | None = None
    """Folder that models registered at run time (``POST /admin/models``: a new version,
    a fine-tuned file) must lie in. None: registering models at run time is off; models
    in the configuration load either way."""
