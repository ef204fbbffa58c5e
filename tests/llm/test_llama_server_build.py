"""Building llama-server from a given source, for the CPU or a CUDA GPU: the source forms it takes, and
the cmake calls (a stand-in `cmake` on PATH records them and writes a binary; no compiler runs)."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from synthkg.config import LLMSettings
from synthkg.llm.factory import make_backend
from synthkg.llm.llama_server import LlamaServerBackend, ServerError, _source_tree, build_server

# PATH holds only the stand-ins (so a real nvcc on the machine is not found): name the tools it uses.
FAKE_CMAKE = """#!/bin/sh
echo "$@" >> "{log}"
case "$1" in
  --build) {mkdir} -p "$2/bin"; printf '#!/bin/sh\\necho version 1\\n' > "$2/bin/llama-server";
           {chmod} +x "$2/bin/llama-server";;
esac
"""


def tool(folder: Path, name: str, text: str = "#!/bin/sh\nexit 0\n") -> None:
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(text)
    (folder / name).chmod(0o755)


def llama_tree(root: Path) -> Path:
    tree = root / "llama.cpp"
    (tree / "ggml").mkdir(parents=True)
    (tree / "CMakeLists.txt").write_text("project(llama)\n")
    return tree


def test_source_forms(tmp_path: Path) -> None:
    tree = llama_tree(tmp_path / "src")
    assert _source_tree(tree, tmp_path / "x") == tree
    archive = tmp_path / "llama-src.tgz"
    with tarfile.open(archive, "w:gz") as out:
        out.add(tree, arcname="llama.cpp")
    unpacked = _source_tree(archive, tmp_path / "unpacked")
    assert (unpacked / "CMakeLists.txt").is_file() and unpacked.name == "llama.cpp"
    sdist = tmp_path / "llama_cpp_python-9.9.tar.gz"
    with tarfile.open(sdist, "w:gz") as out:
        out.add(tree, arcname="llama_cpp_python-9.9/vendor/llama.cpp")
    assert (_source_tree(sdist, tmp_path / "sd") / "CMakeLists.txt").is_file()
    empty = tmp_path / "empty.tgz"
    with tarfile.open(empty, "w:gz") as out:
        out.add(tmp_path / "src" / "llama.cpp" / "ggml", arcname="ggml")
    with pytest.raises(ServerError, match=r"no single llama\.cpp folder"):
        _source_tree(empty, tmp_path / "e")
    with pytest.raises(ServerError, match="does not exist"):
        _source_tree(tmp_path / "absent.tgz", tmp_path / "a")


def test_a_cuda_build_from_a_given_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools, log = tmp_path / "bin", tmp_path / "cmake.log"
    tool(tools, "cmake", FAKE_CMAKE.format(log=log, mkdir=shutil.which("mkdir"), chmod=shutil.which("chmod")))
    tool(tools, "c++")
    monkeypatch.setenv("PATH", str(tools))
    tree = llama_tree(tmp_path / "src")
    with pytest.raises(ServerError, match="needs nvcc"):
        build_server(tmp_path / "cache", source=tree, cuda_arch="90")
    tool(tools, "nvcc")
    binary = build_server(tmp_path / "cache", source=tree, cuda_arch="90", jobs=3)
    assert binary == tmp_path / "cache" / "llama-server" / "llama.cpp" / "llama-server-cuda"
    configure, build = log.read_text().splitlines()
    assert f"-S {tree}" in configure and "-DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90" in configure
    assert build.endswith("--target llama-server -j 3")
    assert build_server(tmp_path / "cache", source=tree, cuda_arch="90") == binary  # built once
    assert len(log.read_text().splitlines()) == 2
    cpu = build_server(tmp_path / "cache", source=tree)
    assert cpu.name == "llama-server" and "GGML_CUDA" not in log.read_text().splitlines()[2]


def test_gpu_layers_reach_the_server_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    monkeypatch.setenv("SYNTHKG_LLAMA_SERVER", str(binary))
    on_gpu = make_backend(LLMSettings(model="qwen2.5-coder-0.5b", gpu_layers=99), tmp_path)
    on_cpu = make_backend(LLMSettings(model="qwen2.5-coder-0.5b"), tmp_path)
    assert isinstance(on_gpu, LlamaServerBackend) and isinstance(on_cpu, LlamaServerBackend)
    assert on_gpu._spec is not None and on_cpu._spec is not None
    assert on_gpu._spec.extra_args == ("--n-gpu-layers", "99") and on_cpu._spec.extra_args == ()


def test_speculative_decoding_reaches_the_server_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "llama-server"
    binary.write_text("#!/bin/sh\nexit 1\n")
    binary.chmod(0o755)
    monkeypatch.setenv("SYNTHKG_LLAMA_SERVER", str(binary))
    settings = LLMSettings(
        model="qwen2.5-coder-0.5b", speculative="ngram-simple", speculative_max=8, gpu_layers=9
    )
    backend = make_backend(settings, tmp_path)
    assert isinstance(backend, LlamaServerBackend) and backend._spec is not None
    assert backend._spec.extra_args == (
        "--n-gpu-layers", "9", "--spec-type", "ngram-simple", "--spec-draft-n-max", "8"
    )
