#!/usr/bin/env bash
# The demo: set up .venv, build a knowledge graph from data/sample/demo_corpus.json (10 Wikipedia passages)
# with the shipped distilled student (one call per chunk, on llama-server), then answer the two sample
# questions (a 2-hop bridge and a comparison) with graph retrieval and the iterative reader, print the
# expected answers beside them, and draw each answer's evidence graph as an HTML page.
# Everything lands in .synthkg/demo/. A rerun reuses the store and the LLM call cache: it takes seconds.
# SYNTHKG_DEMO_READER_MODEL picks the model that answers (default qwen2.5-coder-1.5b), SYNTHKG_DEMO_K the
# chunks retrieved per step.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

# Setup runs again only when the project's requirements or the setup script changed.
stamp=".venv/.demo-setup-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)"
if [ -f "$stamp" ] && [ -x .venv/bin/synthkg ]; then
  echo "demo: .venv is set up (delete $stamp to redo it)"
else
  bash scripts/setup.sh local,teacher
  touch "$stamp"
fi

# llama.cpp gets the cores through its own thread setting; BLAS/torch (the embedding model) one thread,
# since oversubscribed BLAS threads on a small machine cost ~10x. Nothing is fetched from a model hub.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

DEMO_DIR=".synthkg/demo"
STORE="$DEMO_DIR/store"
QUESTIONS_FILE="data/sample/demo_question.json"
READER_MODEL="${SYNTHKG_DEMO_READER_MODEL:-qwen2.5-coder-1.5b}"
K="${SYNTHKG_DEMO_K:-3}"
export SYNTHKG_DATA_DIR="$DEMO_DIR"  # run records and the entity merge log go next to the store
synthkg() { .venv/bin/synthkg --store-path "$STORE" "$@"; }
py() { .venv/bin/python -c "$@"; }
field() { py "import json, sys; print(json.load(open(sys.argv[1]))[int(sys.argv[2])][sys.argv[3]])" "$@"; }
COUNT="$(py "import json, sys; print(len(json.load(open(sys.argv[1]))))" "$QUESTIONS_FILE")"

echo
echo "== 1/2 ingest data/sample/demo_corpus.json with the distilled student (one call per chunk) into $STORE"
synthkg ingest data/sample/demo_corpus.json --extractor distilled

echo
echo "== 2/2 answer $COUNT questions with $READER_MODEL: graph retrieval ($K chunks per step) + iterative reader"
summary=""
for i in $(seq 0 $((COUNT - 1))); do
  n=$((i + 1))
  question="$(field "$QUESTIONS_FILE" "$i" question)"
  gold="$(field "$QUESTIONS_FILE" "$i" answer)"
  echo
  echo "-- question $n: $question"
  synthkg query "$question" --model "$READER_MODEL" --mode graph --iterative --k "$K" --trace \
    --html "$DEMO_DIR/answer-$n.html"
  echo "expected (from the dataset): $gold"
  # The same answer as JSON: every call comes from the cache, so this costs no model call.
  synthkg query "$question" --model "$READER_MODEL" --mode graph --iterative --k "$K" --json \
    > "$DEMO_DIR/answer-$n.json"
  answered="$(py "import json, sys; print(json.load(open(sys.argv[1]))['answer'])" "$DEMO_DIR/answer-$n.json")"
  summary+="  $n. $question
     answered: $answered
     expected: $gold
"
done

run_record="$(ls -t "$DEMO_DIR"/runs/ingest-*.json 2>/dev/null | head -n 1 || true)"
cache_dir="$(.venv/bin/synthkg config show | py "import json, sys; print(json.load(sys.stdin)['cache_dir'])")"
cat <<EOF

== results (demo took $(( $(date +%s) - started ))s)
$summary
store:       $STORE  (embedded graph store + search index in $STORE/index)
run record:  ${run_record:-none}  (what the ingest did: calls, tokens, seconds per stage)
answers:     $DEMO_DIR/answer-N.json  (answer, citations, trace, usage)
pictures:    $DEMO_DIR/answer-N.html  (open in a browser: the evidence graph each answer walked; offline)
LLM cache:   $cache_dir/llm_calls.sqlite3
ask again:   .venv/bin/synthkg --store-path $STORE query "your question" --model $READER_MODEL --k $K --trace
look:        .venv/bin/synthkg --store-path $STORE show "Konrad II the Gray"   (an entity, its relations)
retrieve:    .venv/bin/synthkg --store-path $STORE retrieve "your question"   (ranked chunks, no LLM)
counts:      .venv/bin/synthkg --store-path $STORE stats
EOF
