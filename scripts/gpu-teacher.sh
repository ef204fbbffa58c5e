#!/usr/bin/env bash
# Teacher synthesis on a borrowed GPU machine (no internet): the multi-step workflow with the 1.5B teacher
# in transformers, several corpora at once, one process each (a 1.5B model leaves the GPU idle between
# the Python-bound decode steps of one process, so four processes share it well).
#
#   GGUF=/path/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf OUT=results/ MAX_SECONDS=330 \
#       bash scripts/gpu-teacher.sh NAME=CORPUS[:LIMIT] ...
#
# Needs python3 with torch, transformers and the wheels in .whl (pydantic, pysbd, rouge-score, gguf, ...:
# see data/teacher/README.md). Each NAME writes NAME.jsonl, NAME.stats.json and NAME.log, packed with a
# GPU memory log into $OUT/teacher.tgz. No document is started after MAX_SECONDS; every process is
# stopped at HARD_SECONDS (default MAX_SECONDS + 150) so the archive is always written.
set -u
: "${GGUF:?set GGUF to the teacher GGUF}" "${OUT:?set OUT to the output folder}"
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
pids=()
for job in "$@"; do
    name=${job%%=*}
    spec=${job#*=}
    corpus=${spec%%:*}
    limit=()
    [ "$spec" != "$corpus" ] && limit=(--limit "${spec##*:}")
    timeout -s INT -k 15 "$HARD_SECONDS" python3 -m training.synthesize "$corpus" "${limit[@]}" \
        --out "$WORK/$name.jsonl" --model "$GGUF" --backend hf --device "$DEVICE" --workers 512 \
        --max-batch 256 --batch-wait 1.0 --max-seconds "$MAX_SECONDS" \
        --cache-dir "$WORK/cache-$name" >"$WORK/$name.log" 2>&1 &
    pids+=($!)
done
while [ -n "$(jobs -rp)" ]; do  # GPU memory and progress every 10 s, for the record
    nvidia-smi --query-gpu=memory.used,utilization.gpu --format=csv,noheader >>"$WORK/gpu.log" 2>&1
    for job in "$@"; do n=${job%%=*}; printf '%s %s ' "$n" "$(cat "$WORK/$n.jsonl" 2>/dev/null | wc -l)"; done
    echo
    sleep 10
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
tail -n 3 "$WORK"/*.log
tar czf "$OUT/teacher.tgz" -C "$WORK" --exclude 'cache-*' .
exit $status
