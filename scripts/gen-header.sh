#!/usr/bin/env bash
# Regenerates include/nexxo_cache.h from the C ABI crate (src/) with cbindgen.
# With --check, fails (exit 1) when the committed header differs from a fresh one.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$NEXXO_ROOT"
fresh="$(mktemp)"
trap 'rm -f "$fresh"' EXIT
cbindgen --quiet --config cbindgen.toml --crate nexxo_cache --output "$fresh" .
# Every macro and function of the C API carries the project's prefix.
stray=$(grep -E '^#define ' "$fresh" | grep -vE '^#define (NEXXO_|NEXXO_CACHE_H$)' || true)
stray+=$(grep -E '^[a-z].*\(' "$fresh" | grep -vE '(^| |\*)nexxo_[a-z_]+\(' || true)
if [ -n "$stray" ]; then
  printf 'cbindgen exported names without the nexxo_/NEXXO_ prefix:\n%s\n' "$stray" >&2
  exit 1
fi
if [ "${1:-}" = "--check" ]; then
  if ! diff -u include/nexxo_cache.h "$fresh"; then
    echo "include/nexxo_cache.h is stale: run scripts/gen-header.sh and commit it" >&2
    exit 1
  fi
  echo "include/nexxo_cache.h is up to date"
else
  mkdir -p include
  cp "$fresh" include/nexxo_cache.h
  echo "wrote include/nexxo_cache.h"
fi
