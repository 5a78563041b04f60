"""Compliance: a checklist of controls read from the live Settings, mapped to frameworks.

Each control looks at configuration keys (and, where given, evidence gathered
elsewhere: an audit-chain verification report, an operator's declarations for what
luodi cannot see, such as TLS in front of it or backups) and answers pass, fail or
not applicable, with the evidence and the fix. Each is mapped to MLPS 2.0 level 3
(GB/T 22239-2019, §8.1 general requirements), ISO/IEC 27001:2022 Annex A and GDPR
articles.

This reports control coverage of one configuration. It is not an assessment and never
claims certification: an MLPS filing, an ISO audit or a GDPR review looks at the whole
organisation, of which luodi's configuration is a small part.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

from luodi.config import Settings

__all__ = [
    "CONTROLS",
    "Control",
    "Declarations",
    "Finding",
    "Status",
    "probe_server",
    "run_checklist",
]

DISCLAIMER = (
    "Control coverage of this luodi configuration only; not a certification, audit or"
    " legal opinion under MLPS 2.0, ISO/IEC 27001 or the GDPR."
)


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    NOT_APPLICABLE = "n.a."


@dataclass(frozen=True, slots=True)
class Declarations:
    """What the operator states about things outside luodi (from a YAML file).

    ``tls_terminated_by``: what terminates TLS in front of luodi (``nginx``, ``ingress``).
    ``backups``: where and how often the database and audit log are backed up.
    ``cross_border_basis``: the legal basis for sending data to a cloud backend abroad
    (``SCC``, ``CAC security assessment``, ``adequacy decision``).
    ``audit_verified``: the ``luodi audit verify --json`` report, when one was run.
    """

    tls_terminated_by: str | None = None
    backups: str | None = None
    cross_border_basis: str | None = None
    audit_verified: dict[str, Any] | None = None
    server_probe: dict[str, Any] | None = None
    """What ``probe_server`` saw at the running server (``--server URL``)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One control's answer."""

    id: str
    title: str
    status: Status
    evidence: str
    fix: str
    mlps: str
    iso27001: str
    gdpr: str


Check = Callable[[Settings, Declarations], tuple[Status, str, str]]


@dataclass(frozen=True, slots=True)
class Control:
    """A control: what it asks, where frameworks ask it, and the check."""

    id: str
    title: str
    mlps: str
    iso27001: str
    gdpr: str
    check: Check = field(repr=False)

    def run(self, settings: Settings, decl: Declarations) -> Finding:
        status, evidence, fix = self.check(settings, decl)
        return Finding(
            self.id,
            self.title,
            status,
            evidence,
            fix if status is Status.FAIL else "",
            self.mlps,
            self.iso27001,
            self.gdpr,
        )


def _ok(cond: bool, evidence: str, fix: str) -> tuple[Status, str, str]:
    return (Status.PASS if cond else Status.FAIL), evidence, fix


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _cloud_backends(s: Settings) -> list[str]:
    return [
        f"{model}/{b.name}"
        for model, route in s.routing.models.items()
        for b in route.backends
        if b.location.value == "cloud"
    ]


def _key_source(s: Settings, which: str) -> str | None:
    key = s.security.audit.key if which == "audit" else s.security.model_key
    for name in ("env", "file", "kms_command"):
        if getattr(key, name):
            return f"security.{'audit.key' if which == 'audit' else 'model_key'}.{name}"
    return None


def _auth(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    on = s.security.auth_enabled
    return _ok(
        on,
        f"security.auth_enabled = {on}",
        "set security.auth_enabled: true and give every client its own key (luodi keys create)",
    )


def probe_server(
    url: str, *, api_key: str | None = None, timeout_s: float = 10.0
) -> dict[str, Any]:
    """Ask the running server what an outsider may see and do, and with a key, its state.

    Without a key: ``GET /health`` (does it list backends and addresses to anyone?),
    ``GET /v1/models`` and ``GET /metrics`` (refused without a key unless opened by
    config). With an administrator's key (``audit:read``, ``keys:manage``,
    ``users:manage``), the ``/admin`` metadata: the audit chain's verification, the
    active keys and their expiry, and which users hold the admin role. A part the key
    may not read is recorded as its HTTP status, not guessed.
    """
    import httpx

    base = url.rstrip("/")
    out: dict[str, Any] = {"url": base}
    with httpx.Client(timeout=timeout_s) as client:
        try:
            health = client.get(f"{base}/health")
            out["health_status"] = health.status_code
            out["health_detail_to_anyone"] = "models" in (health.json() or {})
            out["models_without_key"] = client.get(f"{base}/v1/models").status_code
            out["metrics_without_key"] = client.get(f"{base}/metrics").status_code
            if api_key:
                out["admin"] = _admin_metadata(client, base, api_key)
        except (httpx.HTTPError, ValueError) as exc:
            out["error"] = repr(exc)
    return out


def _admin_metadata(client: Any, base: str, api_key: str) -> dict[str, Any]:
    """The ``/admin`` answers the checklist reads; each part its JSON or its status."""
    headers = {"Authorization": f"Bearer {api_key}"}
    parts: dict[str, Any] = {}
    for name, path in (
        ("audit_verify", "/admin/audit/verify"),
        ("keys", "/admin/keys"),
        ("users", "/admin/users"),
    ):
        answer = client.get(f"{base}{path}", headers=headers)
        parts[name] = answer.json() if answer.status_code == 200 else {"status": answer.status_code}
    return parts


def _admin_part(d: Declarations, name: str) -> Any:
    """One part of the probe's admin metadata, or None when it was not read."""
    probe = d.server_probe or {}
    part = (probe.get("admin") or {}).get(name)
    return None if part is None or (isinstance(part, dict) and "status" in part) else part


def _live_auth(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    probe = d.server_probe
    if probe is None:
        return Status.NOT_APPLICABLE, "no running server probed (--server URL)", ""
    if "error" in probe:
        return Status.FAIL, f"{probe['url']}: {probe['error']}", "check the server URL"
    refused = probe["models_without_key"] in (401, 403)
    metrics_ok = probe["metrics_without_key"] in (401, 403) or s.server.open_metrics
    hidden = not probe["health_detail_to_anyone"]
    return _ok(
        refused and metrics_ok and hidden,
        f"{probe['url']} without a key: /v1/models {probe['models_without_key']},"
        f" /metrics {probe['metrics_without_key']}, /health lists backends:"
        f" {probe['health_detail_to_anyone']}",
        "the running server answers without a key: start it with security.auth_enabled"
        " (its config may differ from the one checked here)",
    )


def _tls(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    host = s.server.host
    if _loopback(host) and not d.tls_terminated_by:
        return (
            Status.NOT_APPLICABLE,
            f"server.host = {host} (loopback: traffic does not leave the machine)",
            "",
        )
    return _ok(
        bool(d.tls_terminated_by),
        f"server.host = {host}; declared tls_terminated_by = {d.tls_terminated_by!r}",
        "put a TLS-terminating proxy in front of luodi (luodi serves plain HTTP) and declare"
        " it as tls_terminated_by",
    )


def _rbac(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    on = s.security.auth_enabled
    how = (
        ": every request is checked against its key's roles and tenant"
        " (model:<name>:invoke, kb:<name>:read)"
        if on
        else ": no principal, so no role is checked"
    )
    return _ok(
        on,
        f"security.auth_enabled = {on}{how}",
        "turn authentication on: RBAC is enforced only on authenticated principals",
    )


def _audit_on(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    a = s.security.audit
    return _ok(
        a.enabled and a.durable_ack,
        f"security.audit.enabled = {a.enabled}, durable_ack = {a.durable_ack}",
        "set security.audit.enabled: true and durable_ack: true",
    )


def _retention(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    days = s.security.audit.retention_days
    return _ok(
        days >= 180,
        f"security.audit.retention_days = {days} (PRC Cybersecurity Law art. 21: >= 6 months)",
        "set security.audit.retention_days to at least 180",
    )


def _integrity(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    a = s.security.audit
    key = _key_source(s, "audit")
    outside = a.checkpoint_file or a.checkpoint_command
    parts = [f"HMAC key from {key}" if key else "chain not keyed (security.audit.key unset)"]
    parts.append("external checkpoints on" if outside else "no external checkpoints")
    verified = d.audit_verified
    if verified is not None:
        parts.append(f"luodi audit verify: ok = {verified.get('ok')}")
    live = _admin_part(d, "audit_verify")
    if live is not None:
        parts.append(
            f"GET /admin/audit/verify: ok = {live.get('ok')}, {live.get('checked')} records"
            + (f", first bad #{live.get('first_bad_seq')}" if not live.get("ok") else "")
        )
        verified = live if verified is None or not live.get("ok") else verified
    good = bool(key) and bool(outside) and (verified is None or bool(verified.get("ok")))
    return _ok(
        good,
        "; ".join(parts),
        "set security.audit.key (env, file or kms_command) and checkpoint_file or"
        " checkpoint_command; run luodi audit verify",
    )


def _minimised(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    stored = s.security.audit.store_content
    return _ok(
        not stored,
        f"security.audit.store_content = {stored}"
        + (" (prompts and answers kept as SHA-256 digests)" if not stored else ""),
        "set security.audit.store_content: false unless a retention duty requires the text",
    )


def _model_at_rest(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    required = s.security.require_encrypted_models
    key = _key_source(s, "model")
    return _ok(
        required and key is not None,
        f"security.require_encrypted_models = {required}; model key from {key or 'nowhere'}",
        "encrypt model files (luodi model encrypt), set security.model_key and"
        " security.require_encrypted_models: true",
    )


def _pii(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    on = s.privacy.enabled
    clouds = _cloud_backends(s)
    where = f"cloud backends: {', '.join(clouds)}" if clouds else "no cloud backend"
    return _ok(
        on,
        f"privacy.enabled = {on}; {where}"
        + ("; PII is masked before any cloud call (forced)" if on and clouds else ""),
        "set privacy.enabled: true (PII masked on every route; forced on routes off the premises)",
    )


def _residency(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    mode = s.routing.mode.value
    clouds = _cloud_backends(s)
    if mode == "private" and not clouds:
        return Status.PASS, "routing.mode = private; no cloud backend configured", ""
    return _ok(
        s.privacy.enabled and bool(d.cross_border_basis),
        f"routing.mode = {mode}; cloud backends: {clouds or 'none'}; privacy.enabled ="
        f" {s.privacy.enabled}; declared cross_border_basis = {d.cross_border_basis!r}",
        "keep routing.mode: private, or keep privacy on and declare the transfer basis"
        " (cross_border_basis)",
    )


def _backups(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    return _ok(
        bool(d.backups),
        f"storage.database_url scheme = {s.storage.database_url.split(':', 1)[0]};"
        f" declared backups = {d.backups!r}",
        "back up the database (keys, audit log) off the machine and declare it as backups",
    )


def _exposure(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    srv = s.server
    wildcard = "*" in srv.cors_origins
    return _ok(
        not (srv.open_docs or srv.open_metrics or wildcard),
        f"server.open_docs = {srv.open_docs}, open_metrics = {srv.open_metrics},"
        f" cors_origins = {srv.cors_origins}",
        "keep server.open_docs and open_metrics false and list CORS origins explicitly",
    )


def _limits(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    q = s.security.quotas
    limited = any(
        v is not None
        for lim in (q.per_key, q.per_tenant)
        for v in (lim.requests_per_minute, lim.tokens_per_minute, lim.tokens_per_day)
    )
    return _ok(
        limited,
        f"security.quotas.per_key = {q.per_key.model_dump()}, per_tenant ="
        f" {q.per_tenant.model_dump()}",
        "set request or token limits per key or per tenant (security.quotas)",
    )


def _privileged_keys(s: Settings, d: Declarations) -> tuple[Status, str, str]:
    keys, users = _admin_part(d, "keys"), _admin_part(d, "users")
    if keys is None or users is None:
        return (
            Status.NOT_APPLICABLE,
            "the running server's keys and users were not read (--server URL with an"
            " administrator's --api-key)",
            "",
        )
    admins = {u["name"] for u in users if "admin" in (u.get("roles") or [])}
    active = [k for k in keys if k.get("revoked_us") is None]
    privileged = [k for k in active if k.get("user") in admins]
    lasting = [k for k in privileged if k.get("expires_us") is None]
    evidence = (
        f"{len(active)} active keys, {len(privileged)} of them held by the"
        f" {len(admins)} admin user(s) of {len(users)}; {len(lasting)} admin keys never expire"
        + (f" ({', '.join(k['display_prefix'] for k in lasting[:5])})" if lasting else "")
    )
    return _ok(
        not lasting,
        evidence,
        "give administrators keys that expire (luodi keys create --expires-days N) and"
        " revoke the lasting ones; everyday work takes a narrower role",
    )


CONTROLS: tuple[Control, ...] = (
    Control("AUTH", "Authentication on every request", "8.1.4.1 身份鉴别",
            "A.8.5 Secure authentication", "Art. 32(1)(b)", _auth),
    Control("LIVE_AUTH", "The running server refuses callers without a key", "8.1.4.1 身份鉴别",
            "A.8.5 Secure authentication; A.8.3 Information access restriction",
            "Art. 32(1)(b)", _live_auth),
    Control("TLS", "Encryption in transit", "8.1.2.2 通信传输",
            "A.8.24 Use of cryptography; A.8.20 Networks security", "Art. 32(1)(a)", _tls),
    Control("RBAC", "Role-based, tenant-scoped access control", "8.1.4.2 访问控制",
            "A.5.15 Access control; A.5.18 Access rights", "Art. 25; Art. 32(1)(b)", _rbac),
    Control("PRIVILEGED_KEYS", "Administrator keys expire", "8.1.4.2 访问控制 (最小权限)",
            "A.8.2 Privileged access rights; A.5.17 Authentication information",
            "Art. 32(1)(b)", _privileged_keys),
    Control("AUDIT", "Audit record for every request", "8.1.4.3 安全审计 a-b",
            "A.8.15 Logging", "Art. 5(2); Art. 30", _audit_on),
    Control("AUDIT_RETENTION", "Audit retention >= 180 days", "8.1.4.3 安全审计 c",
            "A.8.15 Logging", "Art. 5(1)(e) (bounded retention)", _retention),
    Control("AUDIT_INTEGRITY", "Tamper-evident audit chain, verified", "8.1.4.3 安全审计 c",
            "A.8.15 Logging; A.5.28 Collection of evidence", "Art. 5(2)", _integrity),
    Control("AUDIT_MINIMISED", "Audit keeps digests, not content", "8.1.4.11 个人信息保护",
            "A.5.34 Privacy and protection of PII", "Art. 5(1)(c)", _minimised),
    Control("MODEL_AT_REST", "Model files encrypted at rest", "8.1.4.8 数据保密性",
            "A.8.24 Use of cryptography", "n/a (model weights are not personal data)",
            _model_at_rest),
    Control("PII", "PII masked before the model; always before a cloud call",
            "8.1.4.11 个人信息保护", "A.8.11 Data masking; A.5.34",
            "Art. 25; Art. 32(1)(a) (pseudonymisation)", _pii),
    Control("RESIDENCY", "Data residency by deployment mode", "8.1.4.11 个人信息保护",
            "A.5.14 Information transfer", "Art. 44-46", _residency),
    Control("BACKUP", "Backups declared", "8.1.4.9 数据备份恢复",
            "A.8.13 Information backup", "Art. 32(1)(c)", _backups),
    Control("EXPOSURE", "No open docs, metrics or wildcard CORS", "8.1.4.4 入侵防范",
            "A.8.9 Configuration management; A.8.20", "Art. 32(1)(b)", _exposure),
    Control("LIMITS", "Rate and token limits", "8.1.3 安全区域边界 (resource control)",
            "A.8.6 Capacity management", "Art. 32(1)(b) (availability)", _limits),
)  # fmt: skip


def run_checklist(settings: Settings, declarations: Declarations | None = None) -> dict[str, Any]:
    """Every control's finding, counts, and the disclaimer; JSON-ready."""
    decl = declarations or Declarations()
    findings = [c.run(settings, decl) for c in CONTROLS]
    counts = {s.value: sum(f.status is s for f in findings) for s in Status}
    return {
        "disclaimer": DISCLAIMER,
        "counts": counts,
        "controls": [asdict(f) | {"status": f.status.value} for f in findings],
    }
