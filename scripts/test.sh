#!/usr/bin/env bash
# Set up .venv (all extras) and run the whole test suite: lint, unit tests, real-model tests and the
# Bolt-server conformance tests against an ArcadeDB server this script starts and stops by PID.
# Extra arguments go to pytest (e.g. scripts/test.sh -m "not slow" -x).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh local,train,dev

# One BLAS/torch thread per process: the suite runs on 2 cores and thread oversubscription costs 10x.
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

BOLT_ROOT="$(mktemp -d "${TMPDIR:-/tmp}/synthkg-arcadedb.XXXXXX")"
BOLT_PASSWORD="test-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
stop_bolt() { .venv/bin/python -m eval.bolt_server stop --root "$BOLT_ROOT" || true; rm -rf "$BOLT_ROOT"; }
trap stop_bolt EXIT
BOLT_PORT="$(.venv/bin/python -m eval.bolt_server start --root "$BOLT_ROOT" --password "$BOLT_PASSWORD" --print-port)"
export SYNTHKG_TEST_BOLT_URI="bolt://127.0.0.1:$BOLT_PORT" SYNTHKG_TEST_BOLT_PASSWORD="$BOLT_PASSWORD"
echo "test: ArcadeDB Bolt server on $SYNTHKG_TEST_BOLT_URI (pid $(cat "$BOLT_ROOT/arcadedb.pid"))"

.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
