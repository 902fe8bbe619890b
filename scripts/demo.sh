#!/usr/bin/env bash
# The main job: on a fresh machine, installs what is missing, builds the library and runs
# the demo (1000 build artifacts written, read back, policy enforced, true stats).
set -euo pipefail
source "$(dirname "$0")/env.sh"
setup_and_build
log "demo"
"$CARGO_TARGET_DIR/release/examples/demo"
