"""Command-line pieces shared by `synthkg`, `synthkg eval` and `synthkg train`: the LLM options, the
settings lookup and the user-facing error exit. A module of its own so that the sub-command modules need
not import `synthkg.cli` (which imports them)."""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, NoReturn

import typer

from synthkg.config import Settings, load_settings

# Control characters (C0 but newline and tab, DEL, C1) and bidirectional overrides: stored text is
# printed for humans, and an ingested "\x1b[2J" must not clear the reader's terminal.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


def for_terminal(text: str) -> str:
    """`text` with every control character written as a visible escape (\\x1b, \\u202e): what the
    CLI prints for humans. JSON output keeps the exact text (JSON escapes control characters itself)."""
    return _UNSAFE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100
                       else f"\\u{ord(m.group()):04x}", text)


def echo(text: str = "", **style: object) -> None:
    """typer.secho for humans: control characters escaped (see for_terminal)."""
    typer.secho(for_terminal(text), **style)  # type: ignore[arg-type]


def fail(message: str, code: int = 1) -> NoReturn:
    """Print a user-facing error (no traceback) and exit."""
    typer.secho(f"error: {for_terminal(message)}", err=True, fg=typer.colors.RED)
    raise typer.Exit(code)


class LLMBackend(StrEnum):
    llamacpp = "llamacpp"
    openai = "openai"
    hf = "hf"


BackendOpt = Annotated[
    LLMBackend | None,
    typer.Option(
        help="LLM backend: llamacpp (local GGUF, default), openai (compatible endpoint), hf (transformers). "
        "Default: the settings' [llm] backend.",
    ),
]
ModelOpt = Annotated[
    str | None,
    typer.Option(
        help="LLM model: a local name (qwen2.5-coder-1.5b, qwen2.5-coder-0.5b, smollm2-135m), a .gguf path, "
        "an endpoint's model name, or a transformers directory. Default: the settings' [llm] model."
    ),
]
BaseUrlOpt = Annotated[
    str | None, typer.Option(help="OpenAI-compatible endpoint URL (key: $OPENAI_API_KEY).")
]


class Engine(StrEnum):
    server = "server"
    python = "python"


EngineOpt = Annotated[
    Engine | None,
    typer.Option(
        help="How llamacpp runs a local model: server (llama.cpp's llama-server with parallel slots, the "
        "default; built by scripts/setup.sh) or python (llama-cpp-python in process). Default: the "
        "settings' [llm] engine.",
    ),
]
# The stepping readers' budget, shared by `synthkg query` and `synthkg eval qa`.
MaxIterationsOpt = Annotated[
    int | None,
    typer.Option("--max-iterations", min=1, help="Iterative or decompose reader: sub-query steps before the "
                 "answer is forced (default: 3 iterative, 4 decompose)."),
]
StepKOpt = Annotated[
    int | None,
    typer.Option("--step-k", min=1, help="Iterative or decompose reader: passages retrieved per sub-query "
                 "(default: --k)."),
]
SlotsOpt = Annotated[
    int | None,
    typer.Option(
        min=1, help="Server engine: sequences decoded together (default: the settings' [llm] slots, 4)."
    ),
]
DeviceOpt = Annotated[
    str | None,
    typer.Option(
        help="hf backend: cpu, or a GPU such as cuda (bfloat16; the calls of all workers are gathered "
        "into batched generations of up to [llm] max_batch, 256). Default: the settings' [llm] device.",
    ),
]


def root_settings(ctx: typer.Context) -> Settings:
    """The settings the `synthkg` root command read, or the default search when a sub-command runs on
    its own (e.g. `python -m training`)."""
    root = ctx.find_root().obj
    return root if isinstance(root, Settings) else load_settings()


def with_llm(
    settings: Settings,
    backend: LLMBackend | None,
    model: str | None,
    base_url: str | None,
    *,
    engine: Engine | None = None,
    slots: int | None = None,
    device: str | None = None,
) -> Settings:
    """`settings` with the LLM options given on the command line."""
    given = {"backend": backend.value if backend else None, "model": model, "base_url": base_url,
             "engine": engine.value if engine else None, "slots": slots, "device": device}
    update = {k: v for k, v in given.items() if v is not None}
    return settings.model_copy(update={"llm": settings.llm.model_copy(update=update)}) if update else settings
