#!/usr/bin/env bash
# The benchmark suite (bench/run.py): sets up and builds like the test command, installs
# the Node peers (lmdb, classic-level), then runs every contestant side by side and
# writes bench/results/{latest.json,report.md,*.svg}; then one short process per compile
# (bench/c/compiles.c) into bench/results/compiles.md. Arguments go to bench/run.py
# (--rounds N, --quick).
set -euo pipefail
source "$(dirname "$0")/env.sh"
setup_and_build
cmake -S . -B "$NEXXO_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$NEXXO_BUILD_DIR" >/dev/null
(cd bench/node && npm ci --no-audit --no-fund --loglevel=error)
(cd bindings/go && PKG_CONFIG_PATH="$NEXXO_BUILD_DIR" go build -o "$NEXXO_BUILD_DIR/bench-worker-go" ./cmd/bench-worker)
log "starting nginx (WebDAV) and redis-server on loopback for the remote-tier benchmark"
servers_dir="$(mktemp -d "${TMPDIR:-/tmp}/nexxo-servers.XXXXXX")"
trap 'scripts/servers.sh stop "$servers_dir"; rm -rf "$servers_dir"' EXIT
scripts/servers.sh start "$servers_dir"
source "$servers_dir/env"
log "benchmarks"
python3 bench/run.py "$@"
log "one short process per compile (bench/c/compiles.c)"
{ echo "$(date -u +%Y-%m-%dT%H:%MZ), nexxo-cache $(nexxo_version) ($(git rev-parse --short HEAD))"; echo; "$NEXXO_BUILD_DIR/bench_compiles_c" --n 300 --rounds 3 --parallel 1,4; } | tee bench/results/compiles.md
