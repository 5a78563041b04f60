"""``luodi model ps|load|unload``: a running server's embedded models, like ``ollama ps``.

The commands call the server's admin API (``/admin/models``) with a key holding
``models:read`` (ps) or ``models:manage`` (load, unload); the server does the work
and audits it.
"""

from __future__ import annotations

from typing import Annotated, Any

import httpx
import typer

__all__ = ["register"]

UrlOpt = Annotated[str, typer.Option("--url", help="Base URL of the luodi server.")]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        envvar="LUODI_API_KEY",
        help="Admin key (also LUODI_API_KEY).",
        show_default=False,
    ),
]
_DEFAULT_URL = "http://127.0.0.1:8000"


def _call(method: str, url: str, path: str, api_key: str | None, timeout: float) -> Any:
    """The JSON answer of one admin call; a one-line error and exit 1 otherwise."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        resp = httpx.request(method, f"{url.rstrip('/')}{path}", headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {url}: {exc}", err=True)
        raise typer.Exit(1) from exc
    if resp.status_code >= 400:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text.strip() or resp.reason_phrase
        typer.echo(f"error: {resp.status_code} {message}", err=True)
        raise typer.Exit(1)
    return resp.json()


def _mib(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / (1 << 30):.2f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"


def _until(model: dict[str, Any]) -> str:
    if model["pinned"]:
        return "pinned"
    if model["state"] != "loaded":
        return "-"
    if model["in_flight"]:
        return "in use"
    expires = model.get("expires_in_s")
    return "-" if expires is None else f"{expires:.0f}s"


def format_models(listing: dict[str, Any]) -> str:
    """The table ``luodi model ps`` prints: one row per model, then the budget."""
    header = ("NAME", "STATE", "MEMORY", "CONTEXT", "IN FLIGHT", "UNLOADS IN", "ALIASES")
    rows = [header]
    for m in listing["models"]:
        rows.append(
            (
                m["name"],
                m["state"],
                _mib(m["memory"]["total_bytes"]),
                str(m["memory"]["n_ctx"]),
                str(m["in_flight"]),
                _until(m),
                ",".join(m["aliases"]) or "-",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows
    ]
    lines.append(
        f"memory: {_mib(listing['held_bytes'])} held of a {_mib(listing['budget_bytes'])} budget"
    )
    return "\n".join(lines)


def register(app: typer.Typer) -> None:
    """Add ``ps``, ``load`` and ``unload`` to the ``luodi model`` group."""

    @app.command("ps")
    def ps(url: UrlOpt = _DEFAULT_URL, api_key: KeyOpt = None) -> None:
        """List the server's embedded models: state, memory, requests in flight."""
        typer.echo(format_models(_call("GET", url, "/admin/models", api_key, timeout=30)))

    @app.command("load")
    def load(
        name: Annotated[str, typer.Argument(help="Model name or alias.")],
        url: UrlOpt = _DEFAULT_URL,
        api_key: KeyOpt = None,
        timeout: Annotated[float, typer.Option(help="Seconds to wait for the load.")] = 600,
    ) -> None:
        """Load a model now (it stays until its keep-alive passes idle)."""
        model = _call("POST", url, f"/admin/models/{name}/load", api_key, timeout=timeout)
        typer.echo(f"{model['name']}: {model['state']} ({_mib(model['memory']['total_bytes'])})")

    @app.command("unload")
    def unload(
        name: Annotated[str, typer.Argument(help="Model name or alias.")],
        url: UrlOpt = _DEFAULT_URL,
        api_key: KeyOpt = None,
    ) -> None:
        """Unload a model now (refused while requests run on it)."""
        model = _call("POST", url, f"/admin/models/{name}/unload", api_key, timeout=120)
        typer.echo(f"{model['name']}: {model['state']}")
