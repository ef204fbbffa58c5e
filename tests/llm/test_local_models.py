"""GGUF assembly from part packages: fake part packages are written to a temp dir on sys.path, so the
real import / get_part_path / join / checksum / rename path runs."""

from __future__ import annotations

import hashlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from synthkg.llm import local_models
from synthkg.llm.base import LLMError
from synthkg.llm.local_models import LocalModel, list_local_models, resolve_model_path


def make_parts(root: Path, prefix: str, chunks: list[bytes]) -> tuple[str, ...]:
    """Importable packages `<prefix>1..n` whose get_part_path() returns their slice."""
    names = []
    for i, data in enumerate(chunks, start=1):
        pkg = root / f"{prefix}{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "data" / "part.bin").write_bytes(data)
        (pkg / "__init__.py").write_text(
            "import os\n"
            "def get_part_path():\n"
            "    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data', 'part.bin')\n"
        )
        names.append(pkg.name)
    return tuple(names)


@pytest.fixture
def parts_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    root = tmp_path / "site"
    root.mkdir()
    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    yield root
    for name in [m for m in sys.modules if m.startswith("fakepart")]:
        del sys.modules[name]


def register(monkeypatch: pytest.MonkeyPatch, parts: tuple[str, ...], sha256: str) -> LocalModel:
    model = LocalModel(
        name="fake-model",
        file_name="fake.gguf",
        size_mb=1,
        install_hint="pip install 'synthkg[fake]'",
        part_modules=parts,
        sha256=sha256,
    )
    monkeypatch.setitem(local_models.LOCAL_MODELS, model.name, model)
    return model


CHUNKS = [b"GGUF" + bytes(range(256)) * 40, b"middle" * 3000, b"tail"]
JOINED = b"".join(CHUNKS)


def test_assembles_parts_in_order_once(
    parts_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, make_parts(parts_root, "fakepart", CHUNKS), hashlib.sha256(JOINED).hexdigest())
    monkeypatch.setattr(local_models, "_CHUNK", 1000)  # several reads per part
    cache = tmp_path / "cache"
    path = resolve_model_path("fake-model", cache)
    assert path == cache / "models" / "fake.gguf"
    assert path.read_bytes() == JOINED
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".part")] == []

    # Assembled once: a second resolve does not read the parts again.
    def no_parts(module: str) -> Path:
        raise AssertionError("parts re-read")

    monkeypatch.setattr(local_models, "_part_path", no_parts)
    assert resolve_model_path("fake-model", cache) == path
    [status] = [s for s in list_local_models(cache) if s.name == "fake-model"]
    assert status.installed and status.assembled and status.path == path


def test_checksum_mismatch_removes_the_temp_file(
    parts_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register(monkeypatch, make_parts(parts_root, "fakepart", CHUNKS), "0" * 64)
    cache = tmp_path / "cache"
    with pytest.raises(LLMError, match=r"fake-model.*sha256.*expected 0{64}"):
        resolve_model_path("fake-model", cache)
    assert [p.name for p in (cache / "models").iterdir() if not p.name.endswith(".lock")] == []


def test_missing_part_package_names_the_extra(
    parts_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    parts = make_parts(parts_root, "fakepart", CHUNKS)
    register(monkeypatch, (*parts, "fakepart_not_installed"), hashlib.sha256(JOINED).hexdigest())
    with pytest.raises(LLMError, match=r"fakepart-not-installed.*pip install 'synthkg\[fake\]'"):
        resolve_model_path("fake-model", tmp_path)
    [status] = [s for s in list_local_models(tmp_path) if s.name == "fake-model"]
    assert not status.installed and not status.assembled and status.path is None


def test_real_registry_extras() -> None:
    hints = {name: m.install_hint for name, m in local_models.LOCAL_MODELS.items()}
    assert hints["qwen2.5-coder-0.5b"] == "pip install 'synthkg[local]'"
    assert hints["qwen2.5-coder-1.5b"] == "pip install 'synthkg[teacher]'"
    assert len(local_models.LOCAL_MODELS["qwen2.5-coder-1.5b"].part_modules) == 22


def test_gguf_path_is_returned_as_is(tmp_path: Path) -> None:
    gguf = tmp_path / "my model.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_model_path(str(gguf), tmp_path / "cache") == gguf
    assert not (tmp_path / "cache").exists()
    with pytest.raises(LLMError, match="model file not found"):
        resolve_model_path(tmp_path / "absent.gguf", tmp_path)


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(LLMError, match=r"unknown local model 'gpt-9'.*qwen2.5-coder-0.5b"):
        resolve_model_path("gpt-9", tmp_path)


def test_an_assembled_file_is_used_without_its_part_packages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A machine handed only the joined file (a borrowed GPU) uses it; without it, the packages are asked
    for as before."""
    register(monkeypatch, ("fakepart_not_installed",), hashlib.sha256(JOINED).hexdigest())
    cache = tmp_path / "cache"
    with pytest.raises(LLMError, match="fakepart-not-installed"):
        resolve_model_path("fake-model", cache)
    (cache / "models").mkdir(parents=True)
    (cache / "models" / "fake.gguf").write_bytes(JOINED)
    assert resolve_model_path("fake-model", cache) == cache / "models" / "fake.gguf"
