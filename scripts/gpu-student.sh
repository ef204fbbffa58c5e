#!/usr/bin/env bash
# Train a distilled student on a borrowed GPU machine (no internet, no local-model packages), its base
# GGUF carried over in pieces:
#
#   PARTS=.gpu/q05 OUT=results/ bash scripts/gpu-student.sh BASE_FILE.gguf NAME [synthkg train options]
#
# Joins PARTS/p* into /tmp/BASE_FILE.gguf. Name it as the local model's file is named (e.g.
# qwen2.5-coder-0.5b-instruct-q4_k_m.gguf): the adapter then records the local model name as its base,
# and loads here from the registry. Needs python3 with torch, transformers and peft, plus the wheels in
# .whl for what the machine lacks. Writes the adapter (no checkpoints) and the log into $OUT/NAME.tgz.
set -u
: "${PARTS:?set PARTS to the folder of the GGUF pieces}" "${OUT:?set OUT to the output folder}"
base=/tmp/${1:?BASE_FILE.gguf}
name=${2:?NAME}
shift 2
cat "$PARTS"/p* >"$base" || exit 1
sha256sum "$base"
WHEELS=${WHEELS:-.whl}
if [ -d "$WHEELS" ]; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        "$WHEELS"/*.whl || exit 1
    export PYTHONPATH=/tmp/site:$PWD
fi
work=$(mktemp -d)
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false SYNTHKG_CACHE_DIR=$work/cache
mkdir -p "$OUT"
python3 -m training --base-model "$base" --output "$work/$name" "$@" \
    >"$work/$name.log" 2>&1
status=$?
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
tail -n 25 "$work/$name.log"
tar czf "$OUT/$name.tgz" -C "$work" --exclude checkpoints --exclude cache .
exit $status
