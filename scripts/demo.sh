#!/usr/bin/env bash
# The main job: on a fresh machine, installs what is missing, builds the library and runs
# the demo (1000 build artifacts written, read back, policy enforced, true stats).
set -euo pipefail
source "$(dirname "$0")/env.sh"
"$NEXXO_ROOT/scripts/setup.sh"
cd "$NEXXO_ROOT"
log "building (the first build compiles RocksDB: 8-14 minutes on 2 cores)"
"${NEXXO_CARGO_BUILD[@]}"
log "demo"
"$CARGO_TARGET_DIR/release/examples/demo"
