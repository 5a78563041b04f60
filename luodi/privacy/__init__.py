"""PII protection: find personal data and replace it by policy, reversibly if asked.

Recognizers (one per kind of data) -> ``Analyzer`` (findings) -> ``Anonymizer``
(operators: mask, redact, replace, hash, pseudonym) -> ``PseudonymVault`` (reversible
tags per conversation) -> ``StreamRestorer`` (values back into the answer). ``PIIStage``
runs it all as a fail-closed gateway stage.
"""

from __future__ import annotations

from luodi.privacy.analyzer import Analyzer
from luodi.privacy.anonymizer import AnonymizedText, Anonymizer, Replacement
from luodi.privacy.errors import PIIBlockedError, PIIUnavailableError, PIIVaultFullError
from luodi.privacy.finding import Finding
from luodi.privacy.operators import OPERATORS, OperatorContext
from luodi.privacy.policy import Policy
from luodi.privacy.recognizer import NearMissRecognizer, Pattern, PatternRecognizer, Recognizer
from luodi.privacy.registry import RecognizerRegistry
from luodi.privacy.restorer import StreamRestorer
from luodi.privacy.stage import PIIStage, ProtectedInput
from luodi.privacy.vault import (
    PseudonymOwner,
    PseudonymVault,
    VaultCipher,
    VaultStore,
    build_vault,
)

__all__ = [
    "OPERATORS",
    "Analyzer",
    "AnonymizedText",
    "Anonymizer",
    "Finding",
    "NearMissRecognizer",
    "OperatorContext",
    "PIIBlockedError",
    "PIIStage",
    "PIIUnavailableError",
    "PIIVaultFullError",
    "Pattern",
    "PatternRecognizer",
    "Policy",
    "ProtectedInput",
    "PseudonymOwner",
    "PseudonymVault",
    "Recognizer",
    "RecognizerRegistry",
    "Replacement",
    "StreamRestorer",
    "VaultCipher",
    "VaultStore",
    "build_vault",
]
