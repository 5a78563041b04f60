"""The append-only, hash-chained audit log: events, writer, verification, export."""

from luodi.security.audit.chain import GENESIS_HASH, VerifyReport, record_hash, verify
from luodi.security.audit.chain_key import ChainKey
from luodi.security.audit.checkpoint import (
    Checkpoint,
    CheckpointExporter,
    export_checkpoint,
    make_checkpoint,
    read_checkpoints,
)
from luodi.security.audit.event import AuditEvent, Decision, sha256_text
from luodi.security.audit.log import AuditFilter, AuditLog, PurgeResult, record_to_dict
from luodi.security.audit.usage import KeyUsage
from luodi.security.audit.writer import AuditWriter

__all__ = [
    "GENESIS_HASH",
    "AuditEvent",
    "AuditFilter",
    "AuditLog",
    "AuditWriter",
    "ChainKey",
    "Checkpoint",
    "CheckpointExporter",
    "Decision",
    "KeyUsage",
    "PurgeResult",
    "VerifyReport",
    "export_checkpoint",
    "make_checkpoint",
    "read_checkpoints",
    "record_hash",
    "record_to_dict",
    "sha256_text",
    "verify",
]
