#!/usr/bin/env bash
# Make here what a borrowed GPU machine (no internet) needs for scripts/gpu-server-extract.sh (and, for
# the wheels and model pieces, scripts/gpu-student.sh), in folders git ignores (.git/info/exclude):
#   .whl/                 wheels of the Python packages that machine lacks (Python 3.12, manylinux x86-64)
#   .gpu/q05/p00..p08     the 0.5B base GGUF in pieces that fit one call each beside the working tree
#   .gpu/corpora/         the MuSiQue, 2Wiki and HotpotQA dev corpora
#   .gpu/llama-cpp-src.tgz  llama.cpp's source from the llama-cpp-python sdist, without models and docs
# Run from the repository root after scripts/setup.sh (it needs the venv and the assembled local model).
set -euo pipefail
python=${PYTHON:-.venv/bin/python}
for ignored in /.whl/ /.gpu/; do
    grep -qxF "$ignored" .git/info/exclude 2>/dev/null || echo "$ignored" >>.git/info/exclude
done
version() { "$python" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p .whl .gpu/q05 .gpu/corpora
wheels=()
for package in pydantic pydantic_core pydantic-settings annotated-types typing-inspection python-dotenv pysbd \
    rank-bm25 gguf peft; do
    wheels+=("$package==$(version "$package")")
done
"$python" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${wheels[@]}"
model=$("$python" -c "
from synthkg.config import Settings
from synthkg.llm.local_models import resolve_model_path
print(resolve_model_path('qwen2.5-coder-0.5b', Settings().cache_dir))")
rm -f .gpu/q05/p*
split -b 56000000 -d -a 2 "$model" .gpu/q05/p
shared=${SHARED:-../shared/data/multihop}
cp "$shared/musique/corpus.json" .gpu/corpora/musique.json
cp "$shared/2wikimultihopqa/corpus.json" .gpu/corpora/2wiki.json
cp "$shared/hotpotqa_dev300/corpus.json" .gpu/corpora/hotpotqa.json
work=$(mktemp -d)
"$python" -m pip download -q --no-deps --no-binary llama-cpp-python "llama-cpp-python==$(version llama-cpp-python)" \
    -d "$work"
tar xzf "$work"/llama_cpp_python-*.tar.gz -C "$work" --wildcards '*/vendor/llama.cpp/*'
tar czf .gpu/llama-cpp-src.tgz -C "$work"/llama_cpp_python-*/vendor --exclude=llama.cpp/models \
    --exclude=llama.cpp/docs --exclude=llama.cpp/media --exclude=llama.cpp/benches --exclude=llama.cpp/tests \
    --exclude='*.gguf' llama.cpp
rm -rf "$work"
du -sh .whl .gpu/q05 .gpu/corpora .gpu/llama-cpp-src.tgz
echo "working tree that travels with each call: $(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1) bytes"
