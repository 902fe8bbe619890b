#!/usr/bin/env bash
# Installs what building and testing need, when missing: Debian packages (libclang for
# RocksDB's bindgen, cmake, ninja, GoogleTest, valgrind, pkg-config; nginx and
# redis-server, the real servers the remote tier is tested against) and cbindgen.
# Idempotent and quiet when everything is there.
set -euo pipefail
source "$(dirname "$0")/env.sh"

pkgs=(build-essential clang libclang-dev pkg-config cmake ninja-build libgtest-dev valgrind nginx redis-server)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }

if [ "$(cbindgen --version 2>/dev/null)" != "cbindgen $CBINDGEN_VERSION" ]; then
  log "installing cbindgen $CBINDGEN_VERSION"
  cargo install --quiet --locked cbindgen --version "$CBINDGEN_VERSION"
fi

if [ "$(python3 -m ziglang version 2>/dev/null)" != "$ZIG_VERSION" ]; then
  log "installing Zig $ZIG_VERSION (PyPI package ziglang)"
  python3 -m pip install --quiet --disable-pip-version-check "ziglang==$ZIG_VERSION"
fi

for tool in node npm go; do
  command -v "$tool" >/dev/null || { echo "$tool not found: this machine kind ships it; install it first" >&2; exit 1; }
done
node_dir="$NEXXO_ROOT/bindings/node"
if [ ! -d "$node_dir/node_modules/koffi" ] || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
  log "installing the Node binding's packages (npm ci)"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
fi
