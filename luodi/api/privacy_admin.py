"""POST /admin/privacy/reload: new PII policies and custom rules without a restart."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request

from luodi.api.deps import StateDep
from luodi.api.gateway import PrincipalDep, client_ip
from luodi.config import load_settings
from luodi.errors import ConfigError, InvalidRequestError, ServiceUnavailableError

__all__ = ["build_privacy_admin_router"]


def build_privacy_admin_router(config_path: Path | None) -> APIRouter:
    """Reloads the ``privacy`` section of ``config_path`` (or ``LUODI_CONFIG``) on demand.

    A custom rule that does not compile is refused with a 400 naming the rule, and the
    rules in force stay as they were.
    """
    router = APIRouter(tags=["admin"])

    @router.post("/admin/privacy/reload")
    async def reload_privacy(
        request: Request, state: StateDep, actor: PrincipalDep
    ) -> dict[str, Any]:
        stage = state.pii
        if stage is None:
            raise ServiceUnavailableError("pii: the PII stage is disabled (privacy.enabled=false)")

        def run() -> dict[str, Any]:
            try:
                fresh = load_settings(config_path).privacy
                stage.reload(fresh)
            except ConfigError as exc:  # the caller's file is wrong, not the server
                raise InvalidRequestError(exc.message, param="privacy") from exc
            return {
                "policies": sorted(fresh.policies),
                "custom_rules": [r.name for r in fresh.custom_rules],
            }

        return await state.gateway.admin_action(
            actor,
            action="privacy.reload",
            permission="privacy:manage",
            detail={"config": str(config_path) if config_path else None},
            run=run,
            source_ip=client_ip(request),
        )

    return router
