"""luodi's one Settings model: a YAML file plus ``LUODI_*`` environment variables.

Precedence, highest first: explicit arguments, ``LUODI_*`` variables (nested with
``__``, e.g. ``LUODI_ENGINE__N_CTX=8192``), the YAML file, the defaults documented
on each field. ``docs/configuration.md`` lists every knob.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from luodi.config.console import ConsoleSettings
from luodi.config.embeddings import EmbeddingSettings
from luodi.config.engine import EngineSettings
from luodi.config.knowledge import KnowledgeSettings
from luodi.config.privacy import PrivacySettings
from luodi.config.risk import RiskSettings
from luodi.config.routing import RoutingSettings
from luodi.config.security import SecuritySettings
from luodi.config.server import ServerSettings
from luodi.config.storage import StorageSettings
from luodi.config.support import SupportSettings
from luodi.errors import ConfigError

__all__ = [
    "EmbeddingSettings",
    "EngineSettings",
    "KnowledgeSettings",
    "PrivacySettings",
    "RiskSettings",
    "RoutingSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "StorageSettings",
    "SupportSettings",
    "load_settings",
]


class Settings(BaseSettings):
    """Everything luodi can be told, one section per part of the system."""

    model_config = SettingsConfigDict(
        env_prefix="LUODI_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    server: ServerSettings = Field(default_factory=ServerSettings)
    """HTTP server."""

    engine: EngineSettings = Field(default_factory=EngineSettings)
    """Embedded llama.cpp engine."""

    embeddings: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    """The embedding model behind /v1/embeddings and knowledge-base indexing."""

    knowledge: KnowledgeSettings = Field(default_factory=KnowledgeSettings)
    """Knowledge bases: storage, chunking, retrieval, sync sources."""

    routing: RoutingSettings = Field(default_factory=RoutingSettings)
    """Deployment mode and upstream backends (vLLM, SGLang, cloud APIs)."""

    security: SecuritySettings = Field(default_factory=SecuritySettings)
    """Identity, RBAC, quotas, audit, model encryption."""

    storage: StorageSettings = Field(default_factory=StorageSettings)
    """Relational store for keys, users and the audit log."""

    privacy: PrivacySettings = Field(default_factory=PrivacySettings)
    """PII detection and desensitization on every path that carries text."""

    support: SupportSettings = Field(default_factory=SupportSettings)
    """Customer-service assistants served as ``support/<name>`` models."""

    risk: RiskSettings = Field(default_factory=RiskSettings)
    """Fraud scoring: learners, labelled sets, decision thresholds."""

    console: ConsoleSettings = Field(default_factory=ConsoleSettings)
    """The web console at /console: sessions, password sign-in and lockout."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls))


def load_settings(path: Path | str | None = None, **overrides: object) -> Settings:
    """Build Settings from a YAML file (or ``LUODI_CONFIG``), the environment and overrides.

    Raises ConfigError naming the file or the bad field, never a raw traceback.
    """
    if path is None and os.environ.get("LUODI_CONFIG"):
        path = os.environ["LUODI_CONFIG"]
    try:
        if path is None:
            return Settings(**overrides)  # type: ignore[arg-type]
        yaml_path = Path(path)
        if not yaml_path.is_file():
            raise ConfigError(f"config file not found: {yaml_path}")

        class _FromFile(Settings):
            model_config = SettingsConfigDict(yaml_file=yaml_path)

        return _FromFile(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from exc
