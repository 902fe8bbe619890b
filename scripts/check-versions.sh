#!/usr/bin/env bash
# Every package carries the library's version (Cargo.toml's workspace version): the npm
# package and its lockfile, the Zig package (build.zig.zon at the root), the generated header, the crates in
# Cargo.lock. Exits 1 naming each that differs. A version bump changes them together.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$NEXXO_ROOT"
want="$(nexxo_version)"
[ -n "$want" ] || { echo "check-versions: no workspace version in Cargo.toml" >&2; exit 1; }
bad=0
check() { # what, found
  if [ "$2" != "$want" ]; then echo "check-versions: $1 says $2, Cargo.toml says $want" >&2; bad=1; fi
}
check bindings/node/package.json "$(node -p "require('./bindings/node/package.json').version")"
check "bindings/node/package-lock.json" "$(node -p "require('./bindings/node/package-lock.json').version")"
check "bindings/node/package-lock.json (root package)" "$(node -p "require('./bindings/node/package-lock.json').packages[''].version")"
check build.zig.zon "$(sed -n 's/^ *\.version = "\(.*\)",$/\1/p' build.zig.zon)"
h() { sed -n "s/^#define NEXXO_CACHE_VERSION_$1 \([0-9]*\)$/\1/p" include/nexxo_cache.h; }
check include/nexxo_cache.h "$(h MAJOR).$(h MINOR).$(h PATCH)"
for crate in nexxo_cache nexxo-core nexxo-cli; do
  check "Cargo.lock ($crate)" "$(awk -v n="$crate" '$0=="name = \""n"\"" {getline; gsub(/version = |"/,""); print; exit}' Cargo.lock)"
done
[ "$bad" -eq 0 ] && echo "check-versions: every package is $want"
exit "$bad"
