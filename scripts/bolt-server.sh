#!/usr/bin/env bash
# Start, stop or query the ArcadeDB Bolt server (a Neo4j-compatible endpoint from the arcadedb-embedded
# wheel) in the background; it is stopped by the PID it leaves in ROOT/arcadedb.pid.
#
#   scripts/bolt-server.sh start [--port 7687] [--password PW] [--print-port] [--heap 1g]
#   scripts/bolt-server.sh status
#   scripts/bolt-server.sh stop
#
# ROOT is $SYNTHKG_BOLT_ROOT or .synthkg/bolt-server; `start` takes the password from --password,
# $NEO4J_PASSWORD, or ROOT/.root-password (a random one is written there on the first start).
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
python="${PYTHON:-$repo/.venv/bin/python}"
[[ -x "$python" ]] || python="python3"
root="${SYNTHKG_BOLT_ROOT:-$repo/.synthkg/bolt-server}"

command="${1:-}"
case "$command" in
  start | stop | status)
    shift
    exec "$python" -m eval.bolt_server "$command" --root "$root" "$@"
    ;;
  *)
    echo "usage: $0 start|stop|status [options]   (see: $python -m eval.bolt_server start --help)" >&2
    exit 2
    ;;
esac
