#!/usr/bin/env bash
# Builds the release artifacts of this platform into dist/ (or --out DIR):
#
#   nexxo-cache-<v>-<platform>.tar.gz        the C SDK: lib/ (shared with SONAME links,
#                                            static), include/, lib/pkgconfig, lib/cmake,
#                                            bin/nexxo-cache; relocatable; stripped
#   nexxo-cache-<v>-<platform>-debug.tar.gz  the debug info the stripped files link to
#                                            (.gnu_debuglink), for gdb and perf
#   npm/nexxo-cache-<v>.tgz                  the Node package (JS, types, README)
#   npm/nexxo-cache-<platform>-<v>.tgz       @nexxo-cache/<platform>: the library alone,
#                                            with os/cpu/libc, in the main package's
#                                            optionalDependencies
#   goproxy/                                 the Go module as a GOPROXY serves it
#                                            (GOPROXY=file://.../goproxy go get ...)
#   nexxo-cache-zig-<v>.tar.gz               the Zig package (zig fetch; build.zig.zon)
#   SHA256SUMS
#
# The platform is this machine's (only linux-x64-gnu builds here); the release workflow
# (.github/workflows/release.yml) runs this script on each platform of its matrix and
# packs the main npm package once with every platform package it built
# (--npm-platforms). scripts/install-test.sh installs each artifact into a clean
# directory and runs the seed workload from every language.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$NEXXO_ROOT"

out="$NEXXO_ROOT/dist"
npm_platforms=""
main_only=0
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out="$(mkdir -p "$2" && cd "$2" && pwd)"; shift 2 ;;
    --npm-platforms) npm_platforms="$2"; shift 2 ;; # comma-separated, e.g. linux-x64-gnu,darwin-arm64
    --npm-main-only) main_only=1; shift ;; # only npm/nexxo-cache-<v>.tgz: no build (the release's last step)
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "package.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

version="$(nexxo_version)"
# The Go module's path: the repository's public path plus bindings/go (bindings/go/go.mod).
go_module="$(nexxo_go_module)"

case "$(uname -s)-$(uname -m)" in
  Linux-x86_64) platform=linux-x64 cpu=x64 os=linux ;;
  Linux-aarch64) platform=linux-arm64 cpu=arm64 os=linux ;;
  *) echo "package.sh: $(uname -s)-$(uname -m) is not a platform this script packs yet" >&2; exit 1 ;;
esac
if ldd --version 2>&1 | grep -qi musl; then libc=musl; else libc=glibc; fi
npm_platform="$platform-$([ "$libc" = glibc ] && echo gnu || echo musl)"
[ -n "$npm_platforms" ] || npm_platforms="$npm_platform"

stage="$(mktemp -d "${TMPDIR:-/tmp}/nexxo-package.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
# The main npm package: JS, types, README; the platform packages as optional
# dependencies (npm installs the one matching os/cpu/libc).
pack_npm_main() {
  local main_dir="$stage/npm-main"
  mkdir -p "$main_dir"
  cp -r bindings/node/lib bindings/node/README.md LICENSE-MIT LICENSE-APACHE "$main_dir/"
  PLATFORMS="$npm_platforms" VERSION="$version" node -e '
    const fs = require("node:fs");
    const pkg = JSON.parse(fs.readFileSync("bindings/node/package.json", "utf8"));
    // What a user installs: no test script or dev tools.
    delete pkg.scripts;
    delete pkg.devDependencies;
    pkg.optionalDependencies = {};
    for (const p of process.env.PLATFORMS.split(",")) pkg.optionalDependencies[`@nexxo-cache/${p}`] = process.env.VERSION;
    fs.writeFileSync(process.argv[1] + "/package.json", JSON.stringify(pkg, null, 2) + "\n");
  ' "$main_dir"
  (cd "$main_dir" && npm pack --silent --pack-destination "$out/npm" >/dev/null)
}

if [ "$main_only" = 1 ]; then
  mkdir -p "$out/npm"
  pack_npm_main
  log "package.sh: $out/npm/nexxo-cache-$version.tgz for $npm_platforms"
  exit 0
fi
log "package.sh: nexxo-cache $version for $npm_platform into $out"
# dist/ is ours to replace; another directory only when it is empty or one we made.
if [ "$out" != "$NEXXO_ROOT/dist" ] && [ -n "$(ls -A "$out" 2>/dev/null)" ] && [ ! -e "$out/.nexxo-dist" ]; then
  echo "package.sh: $out is not empty and not an earlier output of this script; not replacing it" >&2
  exit 1
fi
rm -rf "$out" && mkdir -p "$out/npm" && touch "$out/.nexxo-dist"

# ---- the C SDK: CMake's install tree, stripped ----
cmake -S . -B "$NEXXO_BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$NEXXO_BUILD_DIR" >/dev/null
sdk_name="nexxo-cache-$version-$platform"
sdk="$stage/$sdk_name"
dbg="$stage/$sdk_name-debug"
cmake --install "$NEXXO_BUILD_DIR" --prefix "$sdk" >/dev/null
cp LICENSE-MIT LICENSE-APACHE "$sdk/"
cat >"$sdk/README.md" <<EOF
# nexxo-cache $version C SDK ($platform, $libc)

- \`include/nexxo_cache.h\` (C, the contract: docs/c-api.md in the repository) and
  \`include/nexxo_cache.hpp\` (C++17 wrapper).
- \`lib/libnexxo_cache.so.$version\` with its SONAME link \`libnexxo_cache.so.1\` and
  \`libnexxo_cache.so\`; \`lib/libnexxo_cache.a\` (link also: $(sed -n 's/^Libs.private: //p' "$sdk/lib/pkgconfig/nexxo_cache.pc")).
- \`lib/pkgconfig/nexxo_cache.pc\` and \`lib/cmake/nexxo_cache\` find this directory
  wherever it is unpacked:

      PKG_CONFIG_PATH=\$PWD/lib/pkgconfig cc app.c \$(pkg-config --cflags --libs nexxo_cache)
      cmake -DCMAKE_PREFIX_PATH=\$PWD ...   # find_package(nexxo_cache) -> nexxo_cache::nexxo_cache

- \`bin/nexxo-cache\`: the command (stats, verify, enforce, ...).

Stripped; the debug info is in $sdk_name-debug.tar.gz (gdb finds it through
.gnu_debuglink when the .debug files sit beside the libraries or in a debug directory).
License: MIT OR Apache-2.0.
EOF
mkdir -p "$dbg/lib" "$dbg/bin"
split_debug() { # file, debug dir: keeps the debug info aside, strips the file, links them
  local f="$1" d="$2/$(basename "$1").debug"
  objcopy --only-keep-debug --compress-debug-sections=zlib "$f" "$d"
  strip --strip-unneeded "$f"
  objcopy --add-gnu-debuglink="$d" "$f"
}
split_debug "$sdk/lib/libnexxo_cache.so.$version" "$dbg/lib"
split_debug "$sdk/bin/nexxo-cache" "$dbg/bin"
# The static library keeps its symbols (a linker needs them); its debug info goes.
strip --strip-debug "$sdk/lib/libnexxo_cache.a"
tar -C "$stage" -czf "$out/$sdk_name.tar.gz" "$sdk_name"
tar -C "$stage" -czf "$out/$sdk_name-debug.tar.gz" "$sdk_name-debug"

# ---- npm: the platform package, then the main one ----
plat_dir="$stage/npm-$npm_platform"
mkdir -p "$plat_dir"
cp "$sdk/lib/libnexxo_cache.so.$version" "$plat_dir/libnexxo_cache.so.1"
cp LICENSE-MIT LICENSE-APACHE "$plat_dir/"
cat >"$plat_dir/index.js" <<'EOF'
'use strict';
// The path of the library this package carries; nexxo-cache's loader requires it.
module.exports = require('node:path').join(__dirname, 'libnexxo_cache.so.1');
EOF
cat >"$plat_dir/README.md" <<EOF
# @nexxo-cache/$npm_platform

The prebuilt \`libnexxo_cache\` $version for $os $cpu ($libc) that the
[nexxo-cache](https://www.npmjs.com/package/nexxo-cache) package loads. Install
\`nexxo-cache\`; npm picks this package when it matches the machine.
EOF
NPM_PLATFORM="$npm_platform" OS="$os" CPU="$cpu" LIBC="$libc" VERSION="$version" node -e '
  const e = process.env;
  const pkg = {
    name: `@nexxo-cache/${e.NPM_PLATFORM}`,
    version: e.VERSION,
    description: `libnexxo_cache for ${e.OS} ${e.CPU} (${e.LIBC}), loaded by the nexxo-cache package`,
    license: "MIT OR Apache-2.0",
    main: "index.js",
    files: ["index.js", "libnexxo_cache.so.1", "README.md", "LICENSE-MIT", "LICENSE-APACHE"],
    os: [e.OS], cpu: [e.CPU], libc: [e.LIBC],
  };
  require("node:fs").writeFileSync(process.argv[1] + "/package.json", JSON.stringify(pkg, null, 2) + "\n");
' "$plat_dir"
(cd "$plat_dir" && npm pack --silent --pack-destination "$out/npm" >/dev/null)
pack_npm_main

# ---- Go: the module, laid out as a GOPROXY serves it ----
# The zip holds bindings/go's files under <module>@v<version>/ (Go's module zip format);
# the release tags the repository bindings/go/v<version> so proxy.golang.org serves the
# same from GitHub.
gp="$out/goproxy/$go_module/@v"
mkdir -p "$gp"
echo "v$version" >"$gp/list"
printf '{"Version":"v%s","Time":"%s"}\n' "$version" "$(git log -1 --format=%cI 2>/dev/null || date -u +%FT%TZ)" >"$gp/v$version.info"
cp bindings/go/go.mod "$gp/v$version.mod"
GO_MODULE="$go_module" VERSION="$version" OUT="$gp/v$version.zip" python3 - <<'EOF'
import os, zipfile, subprocess
prefix = f"{os.environ['GO_MODULE']}@v{os.environ['VERSION']}/"
# The module's files as git tracks them (no build outputs), plus the licenses.
files = subprocess.run(["git", "ls-files", "bindings/go"], capture_output=True, text=True, check=True).stdout.split()
with zipfile.ZipFile(os.environ["OUT"], "w", zipfile.ZIP_DEFLATED) as z:
    for f in sorted(files):
        z.write(f, prefix + os.path.relpath(f, "bindings/go"))
    for f in ("LICENSE-MIT", "LICENSE-APACHE"):
        z.write(f, prefix + f)
EOF

# ---- Zig: the package whose manifest is the repository's root build.zig.zon ----
zig_name="nexxo-cache-zig-$version"
zig_dir="$stage/$zig_name"
mkdir -p "$zig_dir"
# Exactly the paths build.zig.zon lists (what `zig fetch` of the repository would hash).
paths="$(sed -n '/\.paths = \.{/,/}/p' build.zig.zon | grep -o '"[^"]*"' | tr -d '"')"
for p in $paths; do
  mkdir -p "$zig_dir/$(dirname "$p")"
  cp -r "$p" "$zig_dir/$p"
done
tar -C "$stage" -czf "$out/$zig_name.tar.gz" "$zig_name"

(cd "$out" && find . -type f ! -name SHA256SUMS ! -name .nexxo-dist -printf '%P\n' | sort | xargs sha256sum >SHA256SUMS)

so_size="$(stat -c %s "$sdk/lib/libnexxo_cache.so.$version")"
a_size="$(stat -c %s "$sdk/lib/libnexxo_cache.a")"
dbg_size="$(stat -c %s "$dbg/lib/libnexxo_cache.so.$version.debug")"
glibc="$(objdump -T "$sdk/lib/libnexxo_cache.so.$version" | grep -o 'GLIBC_[0-9.]*' | sort -Vu | tail -1)"
glibcxx="$(objdump -T "$sdk/lib/libnexxo_cache.so.$version" | grep -o 'GLIBCXX_[0-9.]*' | sort -Vu | tail -1)"
printf 'package.sh: shared %s bytes (debug info aside: %s), static %s bytes; needs %s, %s\n' \
  "$so_size" "$dbg_size" "$a_size" "$glibc" "$glibcxx"
(cd "$out" && find . -type f -name '*.t*gz' -printf '%P %s\n' | sort)
