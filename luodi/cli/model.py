"""``luodi model``: inspect, quantize and fine-tune GGUF files; encrypt them at rest.

The work is in :mod:`luodi.models` (and :mod:`luodi.security.crypto`); these commands
parse options, show progress, print tables or JSON, and turn a refusal into one line
on stderr and a non-zero exit (2 for bad input, 1 for a failure inside llama.cpp).
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from luodi.cli.model_runtime import register as register_runtime
from luodi.errors import ConfigError, LuodiError
from luodi.security.crypto import KeySource, decrypt_file, encrypt_file, is_encrypted_file

app = typer.Typer(
    help="GGUF model files: inspect, quantize, fine-tune; encrypt at rest (AES-256-GCM).",
    no_args_is_help=True,
)

KeyEnvOpt = Annotated[str | None, typer.Option("--key-env", help="Variable holding the key.")]
KeyFileOpt = Annotated[Path | None, typer.Option("--key-file", help="File holding the key.")]
KmsOpt = Annotated[str | None, typer.Option("--kms-command", help="Command printing the key.")]


def _key(key_env: str | None, key_file: Path | None, kms_command: str | None) -> bytes:
    given = [v for v in (key_env, key_file, kms_command) if v is not None]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --key-env, --key-file, --kms-command")
    return KeySource(env=key_env, file=key_file, kms_command=kms_command).load()


def _fail(exc: LuodiError) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(2 if isinstance(exc, ConfigError) else 1)


@app.command()
def encrypt(
    src: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Plain model file.")],
    dst: Annotated[Path, typer.Argument(help="Encrypted file to write.")],
    key_env: KeyEnvOpt = None,
    key_file: KeyFileOpt = None,
    kms_command: KmsOpt = None,
    chunk_mib: Annotated[int, typer.Option(min=1, max=256, help="Chunk size, MiB.")] = 4,
) -> None:
    """Encrypt a model file in authenticated chunks (constant memory)."""
    try:
        key = _key(key_env, key_file, kms_command)
        if is_encrypted_file(src):
            raise ConfigError(f"{src} is already encrypted")
        encrypt_file(src, dst, key, chunk_size=chunk_mib * 1024 * 1024)
    except LuodiError as exc:
        raise _fail(exc) from exc
    typer.echo(f"encrypted {src} -> {dst}")


@app.command()
def decrypt(
    src: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Encrypted file.")],
    dst: Annotated[Path, typer.Argument(help="Plain file to write.")],
    key_env: KeyEnvOpt = None,
    key_file: KeyFileOpt = None,
    kms_command: KmsOpt = None,
) -> None:
    """Decrypt a model file; refuses a wrong key or a tampered file."""
    try:
        decrypt_file(src, dst, _key(key_env, key_file, kms_command))
    except LuodiError as exc:
        raise _fail(exc) from exc
    typer.echo(f"decrypted {src} -> {dst}")


@app.command()
def keygen(
    out: Annotated[Path, typer.Option(help="Key file to create (mode 600).")],
) -> None:
    """Write a new random 256-bit key as hex to a file readable only by you."""
    if out.exists():
        raise typer.BadParameter(f"{out} exists; refusing to overwrite a key")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with open(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    typer.echo(f"wrote key to {out}")


# -- inspect, quantize, finetune -------------------------------------------------------

_GIB = 2**30


def _size(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n:.0f} B"


def _machine_memory() -> float:
    return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


@app.command()
def inspect(
    file: Annotated[Path, typer.Argument(help="GGUF model file.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
    context: Annotated[
        int | None,
        typer.Option(min=1, help="Tokens per sequence for the fit estimate [the model's]."),
    ] = None,
    memory_gib: Annotated[
        float | None,
        typer.Option(min=0.0, help="Memory for weights + KV, GiB [this machine's RAM]."),
    ] = None,
) -> None:
    """Architecture, sizes, GQA, quantization mix and memory needs, from the header alone."""
    from luodi.models import inspect_model

    try:
        info = inspect_model(file)
    except LuodiError as exc:
        raise _fail(exc) from exc
    tokens = context or info.context_length or 4096
    memory = memory_gib * _GIB if memory_gib is not None else _machine_memory()
    mem = info.memory
    estimate = {
        "sequence_tokens": tokens,
        "memory_bytes": memory,
        "kv_bytes_per_sequence": {t: mem.kv_bytes(tokens, t) for t in ("f16", "q8_0")},
        "sequences_that_fit": {
            t: mem.sequences_that_fit(memory, tokens, t) for t in ("f16", "q8_0")
        },
    }
    if as_json:
        typer.echo(json.dumps(info.to_json() | {"estimate": estimate}, indent=2))
        return
    out = Console()
    window = f", sliding window {info.sliding_window}" if info.sliding_window else ""
    out.print(
        f"[bold]{info.name}[/bold]  {info.architecture}, {info.file_type},"
        f" {_size(info.file_size)}, {info.parameters / 1e6:,.1f} M parameters"
    )
    out.print(
        f"layers {info.layers}, embedding {info.embedding_length}, attention heads"
        f" {info.heads} / KV heads {info.kv_heads} (GQA {info.gqa_ratio:g}:1), head size"
        f" {info.head_dim}, context {info.context_length}{window}, vocabulary {info.vocab_size}"
    )
    mix = Table(title="quantization mix")
    for col in ("type", "tensors", "parameters", "bytes", "share"):
        mix.add_column(col, justify="left" if col == "type" else "right")
    total = sum(s.bytes for s in info.quantization) or 1
    for share in info.quantization:
        mix.add_row(
            share.type,
            str(share.tensors),
            f"{share.parameters:,}",
            _size(share.bytes),
            f"{share.bytes / total:.1%}",
        )
    out.print(mix)
    table = Table(title=f"memory ({tokens}-token sequences in {_size(memory)})")
    for col in ("KV cache", "KV / token", "without GQA", "KV / sequence", "sequences that fit"):
        table.add_column(col, justify="right")
    no_gqa = mem.heads / mem.kv_heads if mem.kv_heads else 1.0
    for kv_type in ("f16", "q8_0"):
        per_token = mem.kv_per_token_as[kv_type]
        table.add_row(
            kv_type.upper(),
            _size(per_token),
            _size(per_token * no_gqa),
            _size(per_token * tokens),
            str(estimate["sequences_that_fit"][kv_type]),  # type: ignore[index]
        )
    out.print(table)
    out.print(
        f"weights {_size(mem.weight_bytes)} ({mem.bits_per_weight:.2f} bits/weight);"
        f" the same at F16 {_size(mem.weights_as['f16'])},"
        f" Q8_0 {_size(mem.weights_as['int8 (q8_0)'])}, Q4_0 {_size(mem.weights_as['int4 (q4_0)'])}"
    )
    if info.sliding_window:
        out.print(
            "KV figures are the upper bound: luodi keeps a full-length cache for the"
            " sliding-window layers too (swa_full)"
        )


@app.command()
def quantize(
    src: Annotated[
        Path, typer.Argument(help="Source GGUF (F32/F16/BF16, or any with --allow-requantize).")
    ],
    dst: Annotated[Path, typer.Argument(help="GGUF file to write.")],
    type_name: Annotated[str, typer.Option("--type", help="Q4_K_M, Q5_K_M, Q8_0, Q4_0, F16, ...")],
    imatrix: Annotated[
        Path | None, typer.Option(help="Importance matrix (llama-imatrix output, GGUF or .dat).")
    ] = None,
    allow_requantize: Annotated[
        bool, typer.Option("--allow-requantize", help="Accept an already quantized source.")
    ] = False,
    threads: Annotated[int, typer.Option(min=0, help="Threads [0: every core].")] = 0,
    force: Annotated[bool, typer.Option("--force", help="Overwrite DST.")] = False,
) -> None:
    """Quantize a GGUF model through llama.cpp's llama_model_quantize."""
    from luodi.models.quantize import plan_quantize, run_quantize

    err = Console(stderr=True)
    try:
        plan = plan_quantize(
            src,
            dst,
            type_name,
            imatrix=imatrix,
            allow_requantize=allow_requantize,
            threads=threads,
            force=force,
        )
        for warning in plan.warnings:
            err.print(f"warning: {warning}", soft_wrap=True)
        with Progress(
            SpinnerColumn(),
            TextColumn(f"{plan.source_type} -> {plan.type}"),
            BarColumn(),
            DownloadColumn(),
            TimeElapsedColumn(),
            console=err,
            transient=True,
        ) as progress:
            task = progress.add_task("quantize", total=plan.expected_bytes)

            def show(written: int, _seconds: float) -> None:
                progress.update(task, completed=min(written, plan.expected_bytes))

            result = run_quantize(plan, show)
    except LuodiError as exc:
        raise _fail(exc) from exc
    ratio = result.output_bytes / result.source_bytes if result.source_bytes else 0.0
    typer.echo(
        f"wrote {result.dst} ({result.type}): {_size(result.source_bytes)} ->"
        f" {_size(result.output_bytes)} ({ratio:.0%}) in {result.seconds:.1f} s"
    )


@app.command()
def finetune(
    base: Annotated[
        Path, typer.Argument(help="Base model: an F32 GGUF of a trainable architecture.")
    ],
    data: Annotated[Path, typer.Option(help="JSONL records: {messages: [...]} or {text: ...}.")],
    out: Annotated[Path, typer.Option(help="GGUF file to write the fine-tuned model to.")],
    context: Annotated[int, typer.Option(min=256, help="Tokens per training window (x256).")] = 256,
    epochs: Annotated[int, typer.Option(min=1, help="Passes over the training records.")] = 1,
    learning_rate: Annotated[float, typer.Option("--lr", min=0.0, help="AdamW step size.")] = 1e-5,
    held_out: Annotated[float, typer.Option(help="Share of records held out for the loss.")] = 0.1,
    threads: Annotated[int, typer.Option(min=0, help="Threads [0: llama.cpp's default].")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the held-out split.")] = 0,
    report: Annotated[Path | None, typer.Option(help="Write the run's figures as JSON.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite OUT.")] = False,
) -> None:
    """Fine-tune all transformer weights on records, through llama.cpp's llama_opt_* API."""
    from luodi.models.finetune import FinetuneConfig, StepReport
    from luodi.models.finetune import finetune as run_finetune

    err = Console(stderr=True)
    config = FinetuneConfig(
        base=base,
        data=data,
        out=out,
        context=context,
        epochs=epochs,
        learning_rate=learning_rate,
        held_out=held_out,
        threads=threads,
        seed=seed,
        force=force,
    )

    def step(r: StepReport) -> None:
        if r.phase == "train":
            err.print(
                f"epoch {r.epoch} step {r.step}/{r.steps} loss {r.loss:.4f} ({r.seconds:.1f} s)"
            )

    try:
        with err.status("loading the model and evaluating the held-out records"):
            result = run_finetune(config, step)
    except LuodiError as exc:
        raise _fail(exc) from exc
    if report is not None:
        report.write_text(json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    typer.echo(
        f"held-out loss {result.held_out_loss_before:.4f} -> {result.held_out_loss_after:.4f}"
        f" (perplexity {result.perplexity_before:.2f} -> {result.perplexity_after:.2f})"
        f" on {result.held_out_tokens} tokens; trained {result.steps} steps,"
        f" {result.train_tokens_per_second:.0f} tokens/s, peak RSS {_size(result.peak_rss_bytes)}"
    )
    typer.echo(f"wrote {result.out} ({_size(result.output_bytes)})")


register_runtime(app)  # ps, load, unload: the running server's model pool
