#!/usr/bin/env bash
# Fuzzes the value codec (crates/nexxo-codec) with cargo fuzz for SECONDS per target
# (default 15). The stable toolchain runs cargo fuzz with RUSTC_BOOTSTRAP=1; the fuzz
# build has its own target directory, so RocksDB is never rebuilt for it. New inputs go
# to a scratch directory; the committed seeds in fuzz/corpus stay as they are.
set -euo pipefail
source "$(dirname "$0")/env.sh"
seconds="${1:-15}"
if ! command -v cargo-fuzz >/dev/null; then
  log "installing cargo-fuzz"
  cargo install --quiet --locked cargo-fuzz --version 0.13.2
fi
export RUSTC_BOOTSTRAP=1
target_dir="$HOME/.cache/nexxo-cache/fuzz-target"
cd "$NEXXO_ROOT/fuzz"
cargo fuzz build --target-dir "$target_dir" -O >/dev/null 2>&1 || cargo fuzz build --target-dir "$target_dir" -O
total=0
for t in decode_arbitrary roundtrip_mutated; do
  scratch="$(mktemp -d)"
  out="$(mktemp)"
  if ! cargo fuzz run --target-dir "$target_dir" -O "$t" "$scratch" "corpus/$t" -- -max_total_time="$seconds" >"$out" 2>&1; then
    tail -n 40 "$out"
    echo "fuzz: $t FAILED (the crashing input is under fuzz/artifacts/$t)"
    exit 1
  fi
  runs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$out")
  echo "fuzz: $t: $runs executions in ${seconds}s, no crash"
  total=$((total + runs))
  rm -rf "$scratch" "$out"
done
echo "fuzz: $total executions in all"
