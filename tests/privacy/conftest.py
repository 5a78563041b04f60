"""Shared factories for the PII tests: one analyzer per session (jieba's dictionary
takes a second or two to load), and a stage built from a policy in one call."""

from __future__ import annotations

from typing import Any

import pytest

from luodi.config.privacy import PolicySettings, PrivacySettings
from luodi.privacy import Analyzer, PIIStage


@pytest.fixture(scope="session")
def analyzer() -> Analyzer:
    return Analyzer()


def make_settings(**policy: Any) -> PrivacySettings:
    """Settings whose default policy is ``PolicySettings(**policy)``."""
    extra = {k: policy.pop(k) for k in ("custom_rules", "hash_secret", "enabled") if k in policy}
    return PrivacySettings(policies={"default": PolicySettings(**policy)}, **extra)


def make_stage(**policy: Any) -> PIIStage:
    """A stage with an in-memory vault and the given default policy."""
    return PIIStage.from_settings(make_settings(**policy))
