"""The ``luodi`` command: serve, chat, bench and the admin groups."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console

from luodi.config import Settings, load_settings
from luodi.errors import ConfigError, LuodiError
from luodi.security.client_address import UVICORN_PROXY_OPTIONS

__all__ = ["app", "main"]

app = typer.Typer(
    name="luodi",
    help="Private, OpenAI-compatible LLM serving with a security gateway.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="YAML config file (also LUODI_CONFIG).", show_default=False
    ),
]


def settings_from(config: Path | None, **overrides: object) -> Settings:
    """Load settings for a command; CLI flags override the file and environment."""
    base = load_settings(config)
    if not overrides:
        return base
    data = base.model_dump()
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        data[section][key] = value
    try:
        return type(base).model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid option {where}: {first['msg']}") from exc


@app.command()
def serve(
    config: ConfigOpt = None,
    model: Annotated[Path | None, typer.Option(help="GGUF model file to serve.")] = None,
    model_name: Annotated[str | None, typer.Option(help="Name clients use for the model.")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind.")] = None,
    threads: Annotated[int | None, typer.Option(help="CPU threads for the engine.")] = None,
    n_ctx: Annotated[
        int | None, typer.Option(help="KV cache cells shared by all sequences.")
    ] = None,
    max_batch_size: Annotated[int | None, typer.Option(help="Most sequences per step.")] = None,
    mode: Annotated[
        str | None, typer.Option(help="Deployment mode: private, hybrid or api.")
    ] = None,
) -> None:
    """Start the OpenAI-compatible server."""
    import uvicorn

    from luodi.api.app import create_app, load_embedded
    from luodi.api.server import DrainingServer
    from luodi.security import check_bind_allowed

    settings = settings_from(
        config,
        **{
            "engine.model": model,
            "engine.model_name": model_name,
            "server.host": host,
            "server.port": port,
            "engine.n_threads": threads,
            "engine.n_ctx": n_ctx,
            "engine.max_batch_size": max_batch_size,
            "routing.mode": mode,
        },
    )
    logging.basicConfig(
        level=settings.server.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    check_bind_allowed(settings.security, settings.server.host)
    embedded = load_embedded(settings)
    application = create_app(settings, embedded=embedded, config_path=config)
    server = DrainingServer(
        uvicorn.Config(
            application,
            host=settings.server.host,
            port=settings.server.port,
            log_level=settings.server.log_level,
            **UVICORN_PROXY_OPTIONS,
        ),
        drain=application.state.luodi.drain,
        drain_timeout_s=settings.server.drain_timeout_s,
        gc_freeze=settings.server.gc_freeze,
    )
    server.run()


def _register_subcommands() -> None:
    """Attach the command groups that live in their own modules."""
    from luodi.cli import audit, kb, keys, model, pii, pipeline, risk, roles, support, users
    from luodi.cli.bench import bench
    from luodi.cli.chat import chat
    from luodi.cli.eval import app as eval_app

    app.command(name="bench")(bench)
    app.command(name="chat")(chat)
    app.add_typer(keys.app, name="keys", help="Create, list and revoke API keys.")
    app.add_typer(users.app, name="users", help="Users and tenants (departments).")
    app.add_typer(roles.app, name="roles", help="Built-in and custom roles.")
    app.add_typer(audit.app, name="audit", help="Query, export, verify and purge the audit log.")
    app.add_typer(
        model.app, name="model", help="Inspect, quantize, fine-tune, encrypt; ps|load|unload."
    )
    app.add_typer(pii.app, name="pii", help="Scan and redact personal data in files.")
    app.add_typer(kb.app, name="kb", help="Knowledge bases: create, ingest, search, sync, erase.")
    app.add_typer(pipeline.app, name="pipeline", help="Clean, dedup and filter JSONL datasets.")
    app.add_typer(eval_app, name="eval", help="Evaluate endpoints: capability.")
    app.add_typer(support.app, name="support", help="Customer-service assistants.")
    app.add_typer(risk.app, name="risk", help="Fraud scoring: train, score, eval, explain.")


_register_subcommands()


def main() -> None:
    """Console entry point: one-line errors and a non-zero exit instead of tracebacks."""
    try:
        app()
    except LuodiError as exc:
        # One plain line, never wrapped, so scripts and people read the same thing.
        typer.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
