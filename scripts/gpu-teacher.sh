#!/usr/bin/env bash
# Teacher synthesis on a borrowed GPU machine (no internet): the multi-step workflow with the 1.5B teacher
# in transformers, every chunk in flight at once so each stage runs as one batched generation.
#
#   GGUF=/path/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf OUT=results/ MAX_SECONDS=330 \
#       bash scripts/gpu-teacher.sh NAME CORPUS... [--limit N]
#
# One process: on an H100 one process batching 160 passages already keeps the GPU 97% busy, and four
# processes at once ran out of its 80 GB (see data/README.md). Needs python3 with torch and
# transformers, plus the wheels in .whl for what the machine lacks (pydantic, pysbd, rouge-score, gguf...).
# Writes NAME.jsonl, NAME.stats.json, NAME.log and a GPU log, packed into $OUT/teacher.tgz. No batch is
# started after MAX_SECONDS; the process is stopped at HARD_SECONDS (default MAX_SECONDS + 150), so
# the archive is always written. Loading the GGUF (dequantizing it) takes about 100 s of that.
set -u
: "${GGUF:?set GGUF to the teacher GGUF}" "${OUT:?set OUT to the output folder}"
name=${1:?NAME}
shift
MAX_SECONDS=${MAX_SECONDS:-330}
HARD_SECONDS=${HARD_SECONDS:-$((MAX_SECONDS + 150))}
DEVICE=${DEVICE:-cuda}
WORK=$(mktemp -d)
WHEELS=${WHEELS:-.whl}  # wheels for the packages the machine lacks (none: use the current python as is)
if [ -d "$WHEELS" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True
mkdir -p "$OUT"
timeout -s INT -k 15 "$HARD_SECONDS" python3 -m training.synthesize "$@" --out "$WORK/$name.jsonl" \
    --model "$GGUF" --backend hf --device "$DEVICE" --workers 512 --max-batch 256 --batch-wait 1.0 \
    --max-seconds "$MAX_SECONDS" --cache-dir "$WORK/cache" >"$WORK/$name.log" 2>&1 &
pid=$!
while kill -0 "$pid" 2>/dev/null; do  # GPU memory and utilisation, and records written, every 10 s
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader >>"$WORK/gpu.log" 2>&1
    echo "$name: $(cat "$WORK/$name.jsonl" 2>/dev/null | wc -l) records"
    sleep 10
done
wait "$pid"
status=$?
tail -n 5 "$WORK/$name.log"
tar czf "$OUT/teacher.tgz" -C "$WORK" --exclude cache .
exit $status
