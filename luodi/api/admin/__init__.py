"""The admin REST API, mounted at ``/admin``."""

from luodi.api.admin.router import build_admin_router

__all__ = ["build_admin_router"]
