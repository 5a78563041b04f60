"""The compliance checklist reads the settings it is given and never claims certification."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from luodi.config import Settings
from luodi.evaluation.compliance import CONTROLS, Declarations, probe_server, run_checklist
from luodi.evaluation.server_process import LUODI
from tests.conftest import LiveServer, make_key

HARDENED = {
    "server": {"host": "0.0.0.0"},
    "security": {
        "require_encrypted_models": True,
        "model_key": {"env": "LUODI_MODEL_KEY"},
        "audit": {"key": {"env": "LUODI_AUDIT_KEY"}, "checkpoint_file": "/var/log/luodi.ckpt"},
        "quotas": {"per_key": {"requests_per_minute": 60}},
    },
}
SEALED = {
    "url": "http://10.0.0.5:8000",
    "health_status": 200,
    "health_detail_to_anyone": False,
    "models_without_key": 401,
    "metrics_without_key": 401,
    "admin": {
        "audit_verify": {"ok": True, "checked": 1200},
        "keys": [
            {"display_prefix": "sk-luodi-ab", "user": "ops", "expires_us": 1, "revoked_us": None},
            {
                "display_prefix": "sk-luodi-cd",
                "user": "app",
                "expires_us": None,
                "revoked_us": None,
            },
        ],
        "users": [{"name": "ops", "roles": ["admin"]}, {"name": "app", "roles": ["developer"]}],
    },
}
DECLARED = Declarations(tls_terminated_by="nginx", backups="nightly, off-site", server_probe=SEALED)


def _status(result: dict[str, object]) -> dict[str, str]:
    return {c["id"]: c["status"] for c in result["controls"]}  # type: ignore[attr-defined,index]


def test_hardened_configuration_passes_every_control() -> None:
    result = run_checklist(Settings.model_validate(HARDENED), DECLARED)
    assert set(_status(result).values()) == {"pass"}
    assert len(result["controls"]) == len(CONTROLS)


def test_auth_off_fails_authentication_and_rbac_with_a_fix() -> None:
    settings = Settings.model_validate({**HARDENED, "security": {"auth_enabled": False}})
    result = run_checklist(settings, DECLARED)
    by_id = {c["id"]: c for c in result["controls"]}
    for control in ("AUTH", "RBAC"):
        assert by_id[control]["status"] == "fail"
        assert "security.auth_enabled = False" in by_id[control]["evidence"]
        assert by_id[control]["fix"]


def test_cloud_backend_without_pii_or_transfer_basis_fails_residency() -> None:
    settings = Settings.model_validate(
        {
            "privacy": {"enabled": False},
            "routing": {
                "mode": "api",
                "models": {
                    "m": {
                        "backends": [
                            {"name": "dashscope", "kind": "openai", "url": "https://x/v1",
                             "location": "cloud"},
                        ]
                    }
                },
            },
        }
    )  # fmt: skip
    status = _status(run_checklist(settings))
    assert status["PII"] == "fail" and status["RESIDENCY"] == "fail"


def test_loopback_server_needs_no_tls_declaration_and_a_public_one_does() -> None:
    assert _status(run_checklist(Settings()))["TLS"] == "n.a."
    public = Settings.model_validate({"server": {"host": "0.0.0.0"}})
    assert _status(run_checklist(public))["TLS"] == "fail"


def test_failed_audit_verification_fails_integrity() -> None:
    settings = Settings.model_validate(HARDENED)
    bad = Declarations(tls_terminated_by="nginx", backups="nightly", audit_verified={"ok": False})
    assert _status(run_checklist(settings, bad))["AUDIT_INTEGRITY"] == "fail"


def test_checklist_never_claims_certification() -> None:
    result = run_checklist(Settings.model_validate(HARDENED), DECLARED)
    text = json.dumps(result).lower()
    assert "not a certification" in text
    assert "certified" not in text and "compliant" not in text


@pytest.mark.parametrize("strict", [False, True])
async def test_cli_strict_exits_non_zero_on_a_failed_control(tmp_path: Path, strict: bool) -> None:
    out = tmp_path / "c.json"
    proc = await asyncio.create_subprocess_exec(
        *LUODI,
        "eval",
        "compliance",
        "--out",
        str(out),
        *(["--strict"] if strict else []),
        env={**os.environ, "COLUMNS": "200", "LUODI_SECURITY__AUTH_ENABLED": "false"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    text, _ = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == (1 if strict else 0), text.decode()
    assert _status(json.loads(out.read_text()))["AUTH"] == "fail"


def test_a_server_answering_without_a_key_fails_live_auth() -> None:
    open_server = {**SEALED, "models_without_key": 200, "health_detail_to_anyone": True}
    result = run_checklist(
        Settings.model_validate(HARDENED), Declarations(server_probe=open_server)
    )
    by_id = {c["id"]: c for c in result["controls"]}
    assert by_id["LIVE_AUTH"]["status"] == "fail"
    assert "/v1/models 200" in by_id["LIVE_AUTH"]["evidence"]
    assert _status(run_checklist(Settings()))["LIVE_AUTH"] == "n.a."


@pytest.mark.model
async def test_probing_the_live_server_passes_live_auth(live_server: LiveServer) -> None:
    probe = await asyncio.to_thread(probe_server, live_server.url)
    assert probe["models_without_key"] == 401 and not probe["health_detail_to_anyone"]
    result = run_checklist(Settings(), Declarations(server_probe=probe))
    assert _status(result)["LIVE_AUTH"] == "pass"


def test_an_admin_key_that_never_expires_fails_privileged_keys() -> None:
    admin = dict(SEALED["admin"])  # type: ignore[arg-type]
    admin["keys"] = [*admin["keys"], {"display_prefix": "sk-luodi-zz", "user": "ops",
                                      "expires_us": None, "revoked_us": None}]  # fmt: skip
    result = run_checklist(
        Settings.model_validate(HARDENED),
        Declarations(server_probe={**SEALED, "admin": admin}),
    )
    by_id = {c["id"]: c for c in result["controls"]}
    assert by_id["PRIVILEGED_KEYS"]["status"] == "fail"
    assert "sk-luodi-zz" in by_id["PRIVILEGED_KEYS"]["evidence"]
    assert "expires-days" in by_id["PRIVILEGED_KEYS"]["fix"]


def test_a_live_chain_that_fails_verification_fails_audit_integrity() -> None:
    admin = {**SEALED["admin"], "audit_verify": {"ok": False, "checked": 10, "first_bad_seq": 7}}  # type: ignore[dict-item]
    result = run_checklist(
        Settings.model_validate(HARDENED), Declarations(server_probe={**SEALED, "admin": admin})
    )
    by_id = {c["id"]: c for c in result["controls"]}
    assert by_id["AUDIT_INTEGRITY"]["status"] == "fail"
    assert "first bad #7" in by_id["AUDIT_INTEGRITY"]["evidence"]


@pytest.mark.model
async def test_an_admin_key_reads_the_live_servers_metadata(live_server: LiveServer) -> None:
    probe = await asyncio.to_thread(probe_server, live_server.url, api_key=live_server.api_key)
    assert probe["admin"]["audit_verify"]["ok"] is True
    result = run_checklist(Settings.model_validate(HARDENED), Declarations(server_probe=probe))
    by_id = {c["id"]: c for c in result["controls"]}
    assert "GET /admin/audit/verify: ok = True" in by_id["AUDIT_INTEGRITY"]["evidence"]
    # The test server's admin key was made without an expiry.
    assert by_id["PRIVILEGED_KEYS"]["status"] == "fail"

    developer = make_key(live_server.gateway, "compliance-dev", ["developer"])
    limited = await asyncio.to_thread(probe_server, live_server.url, api_key=developer)
    assert limited["admin"]["keys"] == {"status": 403}
    result = run_checklist(Settings(), Declarations(server_probe=limited))
    assert _status(result)["PRIVILEGED_KEYS"] == "n.a."
