"""Declared warm prefixes: computed at start, pinned, saved to disk, reloaded warm.

A restart with the same model and the same prefix text reloads the KV state from
``cache_dir`` instead of recomputing it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import llama_cpp

from luodi.engine.llamacpp.kv_cache import FreeKV, PrefixCache
from luodi.engine.llamacpp.model import LlamaModel
from luodi.errors import ConfigError

__all__ = ["WarmPrefixes"]

log = logging.getLogger(__name__)


class WarmPrefixes:
    """Loads or computes each declared prefix into a pinned prefix-cache slot."""

    def __init__(
        self, model: LlamaModel, cache: PrefixCache, cache_dir: Path, *, identity: Path
    ) -> None:
        """``identity`` is the model file as configured (not a memfd path), for cache keys."""
        self._model = model
        self._identity = identity
        self._cache = cache
        self._dir = cache_dir / "prefix-kv"
        self.token_lists: list[list[int]] = []
        self.loaded_from_disk = 0
        self.computed = 0

    def load_or_compute(self, texts: list[str], *, batch_tokens: int) -> None:
        for text in texts:
            tokens = self._model.tokenize(text)
            if len(tokens) >= self._model.n_ctx // 2:
                raise ConfigError(
                    f"warm prefix of {len(tokens)} tokens does not fit in half the KV cache"
                    f" (n_ctx={self._model.n_ctx}): {text[:60]!r}..."
                )
            slot = self._cache.reserve_slot(tokens, pinned=True)
            if slot is None:
                raise ConfigError("no prefix-cache slot left for warm prefixes")
            path = self._state_path(tokens)
            if path.exists() and self._load(path, slot, tokens):
                self.loaded_from_disk += 1
            else:
                self._compute(slot, tokens, batch_tokens)
                self._save(path, slot, tokens)
                self.computed += 1
            self.token_lists.append(tokens)
        if texts:
            log.info(
                "warm prefixes: %d reloaded from disk, %d computed",
                self.loaded_from_disk,
                self.computed,
            )

    def _compute(self, slot: int, tokens: list[int], batch_tokens: int) -> None:
        for start in range(0, len(tokens), batch_tokens):
            chunk = tokens[start : start + batch_tokens]
            items = [(t, start + i, slot, False) for i, t in enumerate(chunk)]
            rc = self._model.decode(items)
            if rc != 0:
                for op in self._cache.release(slot):
                    if isinstance(op, FreeKV):
                        self._model.seq_remove(op.seq_id)
                raise ConfigError(f"computing a warm prefix failed (llama_decode returned {rc})")

    def _load(self, path: Path, slot: int, tokens: list[int]) -> bool:
        restored = self._model.load_sequence(path, slot, len(tokens) + 1)
        if restored != tokens:
            log.warning("saved prefix state %s does not match; recomputing", path.name)
            self._model.seq_remove(slot)
            return False
        return True

    def _save(self, path: Path, slot: int, tokens: list[int]) -> None:
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            if self._model.save_sequence(tmp, slot, tokens) > 0:
                tmp.replace(path)
        except OSError as exc:  # a read-only cache dir costs a warm restart, nothing else
            log.warning("could not save warm prefix state to %s: %s", path, exc)

    def _state_path(self, tokens: list[int]) -> Path:
        stat = self._identity.stat()
        digest = hashlib.sha256()
        digest.update(str(self._identity.resolve()).encode())
        digest.update(f"{stat.st_size}:{int(stat.st_mtime)}".encode())
        digest.update(self._model.description.encode())
        digest.update(llama_cpp.__version__.encode())
        digest.update(b"".join(t.to_bytes(4, "little") for t in tokens))
        return self._dir / f"{digest.hexdigest()[:32]}.kv"
