# Sourced by the other scripts: one place for paths and pinned tool versions.
# shellcheck shell=bash
NEXXO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export NEXXO_ROOT
# RocksDB's C++ takes 8-14 minutes to build here: keep cargo's output outside the clone
# so that every clone on this machine (CI's included) shares one build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nexxo-cache/target}"
export NEXXO_BUILD_DIR="${NEXXO_BUILD_DIR:-$NEXXO_ROOT/build}"
# The library every test and binding runs against: the one CMake copied from cargo.
export NEXXO_LIB_DIR="$NEXXO_BUILD_DIR/lib"
export CBINDGEN_VERSION=0.29.4
# Zig comes from the ziglang package on PyPI, one pinned version.
export ZIG_VERSION=0.15.2
zig() { python3 -m ziglang "$@"; }
export PATH="$HOME/.cargo/bin:$PATH"
# One cargo invocation everywhere, so the same compiled RocksDB serves every step.
NEXXO_CARGO_BUILD=(cargo build --release --workspace --all-targets --locked)
log() { printf '\n==> %s\n' "$*"; }
# The one version of every package (Cargo.toml's workspace version), and the Go
# module's path (bindings/go/go.mod names it).
nexxo_version() { awk -F'"' '/^\[workspace.package\]/{p=1} p && /^version = /{print $2; exit}' "$NEXXO_ROOT/Cargo.toml"; }
nexxo_go_module() { sed -n 's/^module //p' "$NEXXO_ROOT/bindings/go/go.mod"; }
# Installs what is missing, then builds everything once, from the repository's root.
setup_and_build() {
  "$NEXXO_ROOT/scripts/setup.sh"
  cd "$NEXXO_ROOT"
  log "building (the first build compiles RocksDB: 8-14 minutes on 2 cores)"
  "${NEXXO_CARGO_BUILD[@]}"
}
