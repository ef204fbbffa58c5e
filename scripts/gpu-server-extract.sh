#!/usr/bin/env bash
# Extract whole corpora with the shipped distilled student on a borrowed GPU machine, on llama.cpp's
# server built there for the GPU: continuous batching, every sequence stops on its own, the grammar and
# loop guard as on the CPU.
#
# Why not transformers (`synthkg extract --backend hf --device cuda`, which works): on an H200 (2026-12-04)
# its static batches run to their longest row (the JSON student's budget is 1,536 tokens) and none
# finished in time: 2,048 passages in one batch, 71 GB, GPU 40-100% busy, not done after 7 min; 256
# passages, 8.4 GB, GPU 17-56% busy (per-step overhead on the CPU), not done after 100 s; 70-80 s went by
# before the first batch (loading and chunking the corpus).
#
# What this script did on an H200 (2026-12-04, 128 slots): the CUDA build took 205 s after the first call
# (16 cores, no flash-attention kernels); then 548 chunks of 527 2Wiki passages in about 408 s of
# extraction (two calls), about 4,650 passages per hour: 10x the 2-core CPU, but the GPU was busy only
# 0-49% of the time while llama-server used 310% CPU. The server's per-slot sampling (grammar checks over
# a 151k-token vocabulary) bounds it, not the GPU: next time run several servers (e.g. 4 x 32 slots, one
# per 4 cores) behind one extraction: `[llm] servers` (SERVERS here, default 4) does that since.
#
#   bash scripts/gpu-server-extract.sh build .gpu/llama-cpp-src.tgz     # first call: returns at once
#   PARTS=.gpu/q05 OUT=$OUT MAX_SECONDS=300 bash scripts/gpu-server-extract.sh run NAME CORPUS...
#
# `build` starts `python -m synthkg.llm.llama_server build --cuda-arch 90` from the carried llama.cpp
# source in its own session, so it compiles while the next calls carry the model's pieces; `run` waits
# for it (at most WAIT_BUILD seconds), joins PARTS/p* into the cache as the local model's file (sha256
# checked), and runs `synthkg extract --engine server --gpu-layers 99` with SLOTS sequences decoded
# together on SERVERS servers. No document is started after MAX_SECONDS; the process is stopped at HARD_SECONDS (default
# MAX_SECONDS + 90; CALL_SECONDS instead fits both into what is left of a call of that length), so what
# finished is always packed into $OUT (also every 30 s): NAME.jsonl.gz (records: extract again
# into the same file to resume), NAME.stats.json, NAME.log, the server's and the build's logs, a GPU log.
# Needs python3, cmake and nvcc there, plus the wheels in .whl for what the machine lacks.
#
# The calls (15 min of device time; at most 64 MiB travel per call, the working tree included). Here:
# scripts/gpu-prepare.sh; then make the tree small (`git rm -r -q --cached data
# training/adapters/smollm2-135m-synthkg training/adapters/qwen2.5-coder-0.5b-synthkg-lines` and move
# those folders aside: 7 MB travel instead of 18.5). 1: `build`, carrying .whl, .gpu/corpora and
# .gpu/llama-cpp-src.tgz. 2-10: `ls .gpu/q05`, carrying one .gpu/q05/pNN each, back to back (a machine
# keeps what earlier calls carried, but goes back 30 s after a call). 11: `run`. Then, here:
# `git checkout HEAD -- data training/adapters`.
set -u
CACHE=/tmp/synthkg-cache
BUILD_LOG=/tmp/llama-server-build.out
mode=${1:?build or run}
shift
WHEELS=${WHEELS:-.whl}
if [ -d "$WHEELS" ] && [ ! -e /tmp/site/.installed ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl && touch /tmp/site/.installed || exit 1
fi
export PYTHONPATH=/tmp/site:$PWD HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 SYNTHKG_CACHE_DIR=$CACHE
mkdir -p "$CACHE/models"

if [ "$mode" = build ]; then
    source=${1:?the llama.cpp source archive}
    setsid nohup python3 -m synthkg.llm.llama_server build --source "$source" --cuda-arch "${CUDA_ARCH:-90}" \
        --cache-dir "$CACHE" --jobs "$(nproc)" >"$BUILD_LOG" 2>&1 </dev/null &
    echo "build started (pid $!), log $BUILD_LOG"
    exit 0
fi

: "${PARTS:?set PARTS to the folder of the GGUF pieces}" "${OUT:?set OUT to the output folder}"
name=${1:?NAME}
shift
MAX_SECONDS=${MAX_SECONDS:-300}
HARD_SECONDS=${HARD_SECONDS:-$((MAX_SECONDS + 90))}
WAIT_BUILD=${WAIT_BUILD:-420}
SLOTS=${SLOTS:-128}
SERVERS=${SERVERS:-4}  # llama-server processes sharing the slots: one samples its slots in one loop
WORK=/tmp/gpu-work  # fixed, so a second call on the same machine resumes the first one
mkdir -p "$WORK"
mkdir -p "$OUT"
pack() {
    [ -f "$WORK/$name.jsonl" ] && gzip -c "$WORK/$name.jsonl" >"$OUT/$name.jsonl.gz"
    cp "$WORK/$name.log" "$WORK/gpu.log" "$WORK/$name.stats.json" "$OUT/" 2>/dev/null
    tail -c 200000 "$BUILD_LOG" >"$OUT/build.log" 2>/dev/null
    find "$CACHE" -name '*.server.log' -exec tail -c 300000 {} \; >"$OUT/server.log" 2>/dev/null
}
gguf=$CACHE/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
if [ ! -f "$gguf" ]; then
    cat "$PARTS"/p* >"$gguf.part" && mv "$gguf.part" "$gguf" || exit 1
fi
python3 - "$gguf" <<'EOF' || exit 1
import hashlib, sys
from synthkg.llm.local_models import LOCAL_MODELS
digest = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()
expected = LOCAL_MODELS["qwen2.5-coder-0.5b"].sha256
print("sha256", digest, "ok" if digest == expected else f"MISMATCH (expected {expected})")
sys.exit(digest != expected)
EOF
binary=$CACHE/llama-server/llama-cpp-src/llama-server-cuda
waited=0
while [ ! -x "$binary" ] && pgrep -f "synthkg.llm.llama_server build" >/dev/null && [ "$waited" -lt "$WAIT_BUILD" ]; do
    sleep 5
    waited=$((waited + 5))
done
echo "waited ${waited}s for the build"
if [ ! -x "$binary" ]; then
    echo "no CUDA llama-server:"
    tail -n 30 "$BUILD_LOG"
    pack
    exit 1
fi
if [ -n "${CALL_SECONDS:-}" ]; then  # fit the run into what is left of the call: 30 s to start, 45 to drain
    MAX_SECONDS=$((CALL_SECONDS - SECONDS - 75))
    HARD_SECONDS=$((MAX_SECONDS + 45))
    echo "extracting for ${MAX_SECONDS}s"
fi
export SYNTHKG_LLAMA_SERVER=$binary SYNTHKG_LLM__GPU_LAYERS=99 SYNTHKG_LLM__SLOTS=$SLOTS SYNTHKG_LLM__SERVERS=$SERVERS
export SYNTHKG_LLM__ENGINE=server SYNTHKG_LLM__BACKEND=llamacpp SYNTHKG_LLM__MODEL=synthkg-student
timeout -s INT -k 20 "$HARD_SECONDS" python3 -m synthkg.cli extract "$@" --out "$WORK/$name.jsonl" \
    --extractor distilled --workers "$SLOTS" --max-seconds "$MAX_SECONDS" --no-progress \
    >"$WORK/$name.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do  # GPU memory and utilisation, and records written, every 10 s
    echo "$(date +%T) $(nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader)" \
        >>"$WORK/gpu.log" 2>&1
    echo "$name: $(cat "$WORK/$name.jsonl" 2>/dev/null | wc -l) records"
    sleep 10
    ticks=$((${ticks:-0} + 1))
    [ $((ticks % 3)) -eq 0 ] && pack  # what is done comes back even if the call is cut off
done
wait "$pid"
status=$?
tail -n 15 "$WORK/$name.log"
pack
exit $status
