#!/usr/bin/env bash
# Installs every artifact scripts/package.sh made into an empty directory outside the
# repository, as a user would, and runs the seed workload (1,000 x 1 KiB into
# "transform", read back byte for byte, exact stats) from C, C++ (CMake's
# find_package), the command, Node (require and import), Go and Zig against the
# installed library.
#
# The room: a clean HOME, PATH of /usr/bin, /bin and a directory holding node, npm, go
# and zig only (no cargo, no rustc: checked), no network use (npm --offline from local
# tarballs; Go from a file:// GOPROXY over dist/goproxy; zig fetch of the local
# tarball), nothing of the build tree: the library comes from the unpacked SDK or the
# npm platform package.
#
#   scripts/install-test.sh [DIST]     (default: dist/, made by scripts/package.sh)
set -euo pipefail
source "$(dirname "$0")/env.sh"
dist="$(cd "${1:-$NEXXO_ROOT/dist}" && pwd)"
version="$(nexxo_version)"
go_module="$(nexxo_go_module)"
sdk_tgz="$(ls "$dist"/nexxo-cache-"$version"-linux-x64.tar.gz)"

room="$(mktemp -d "${TMPDIR:-/tmp}/nexxo-install.XXXXXX")"
case "$room" in "$NEXXO_ROOT"/*) echo "install-test: the room must be outside the repository" >&2; exit 1 ;; esac
cleanup() { chmod -R u+w "$room" 2>/dev/null || true; rm -rf "$room"; }
[ -n "${NEXXO_KEEP_ROOM:-}" ] && echo "install-test: keeping $room" || trap cleanup EXIT

# What the room may reach: the tools a user of each language has, and nothing of ours.
mkdir -p "$room/bin" "$room/home" "$room/deps"
ln -s "$(command -v node)" "$(command -v npm)" "$room/bin/"
ln -s "$(command -v go)" "$room/bin/go"
ln -s "$(python3 -c 'import ziglang, os; print(os.path.dirname(ziglang.__file__))')/zig" "$room/bin/zig"
# koffi, the Node package's one dependency, and its prebuilt binary for this platform
# (its own optional dependency), as the registry's tarballs (from npm's cache when they
# are there): the room installs offline.
koffi_version="$(node -p "require('$NEXXO_ROOT/bindings/node/package.json').dependencies.koffi")"
(cd "$room/deps" && npm pack --silent --prefer-offline "koffi@$koffi_version" \
  "@koromix/koffi-$(node -p 'process.platform + "-" + process.arch')@$koffi_version" >/dev/null)
koffi_tgz="$(ls "$room"/deps/*.tgz | tr '\n' ' ')"

in_room() { # runs "$@" in the room's environment
  # npm: no update check, no install scripts (ours has none; koffi's would rebuild
  # the binary its prebuilt package brings: 30 s here).
  env -i HOME="$room/home" PATH="$room/bin:/usr/bin:/bin" TMPDIR="$room/tmp" LANG=C.UTF-8 \
    npm_config_update_notifier=false npm_config_ignore_scripts=true \
    "$@"
}
mkdir -p "$room/tmp"
if in_room bash -c 'command -v cargo || command -v rustc'; then
  echo "install-test: cargo or rustc is reachable in the room" >&2; exit 1
fi
ok() { printf '  ok: %s\n' "$*"; }

log "install-test: the C SDK ($(basename "$sdk_tgz")) unpacked into $room/sdk"
mkdir -p "$room/sdk"
tar -C "$room/sdk" --strip-components=1 -xzf "$sdk_tgz"
sdk="$room/sdk"

mkdir -p "$room/c"
cat >"$room/c/seed.c" <<'EOF'
/* The seed workload through the C ABI: 1,000 x 1 KiB, set, then get byte for byte. */
#include <nexxo_cache.h>
#include <stdio.h>
#include <string.h>
#define N 1000
static void value(int i, unsigned char *v) {
  for (int j = 0; j < 1024; j++) v[j] = (unsigned char)("export const x = 1;\n"[(i + j) % 20]);
  memcpy(v, &i, sizeof i);
}
int main(int argc, char **argv) {
  if (argc != 2) return 2;
  nexxo_cache *c = NULL;
  nexxo_status s = nexxo_cache_open(argv[1], NULL, &c);
  if (s != NEXXO_OK) { fprintf(stderr, "open: %s\n", nexxo_status_str(s)); return 1; }
  unsigned char v[1024], got[1024];
  char key[32];
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "src/m%d.ts", i);
    value(i, v);
    s = nexxo_cache_set(c, "transform", (const uint8_t *)key, strlen(key), v, sizeof v);
    if (s != NEXXO_OK) { fprintf(stderr, "set: %s\n", nexxo_status_str(s)); return 1; }
  }
  for (int i = 0; i < N; i++) {
    snprintf(key, sizeof key, "src/m%d.ts", i);
    value(i, v);
    size_t len = 0;
    s = nexxo_cache_get_into(c, "transform", (const uint8_t *)key, strlen(key), got, sizeof got, &len);
    if (s != NEXXO_OK || len != sizeof v || memcmp(got, v, len) != 0) { fprintf(stderr, "get %d: %s\n", i, nexxo_status_str(s)); return 1; }
  }
  nexxo_stats st;
  nexxo_cache_stats(c, &st);
  printf("%s entries=%llu hits=%llu disabled=%d\n", nexxo_version(), (unsigned long long)st.entries,
         (unsigned long long)st.hits, (int)st.disabled);
  nexxo_cache_close(c);
  return st.entries == N && st.hits == N && !st.disabled ? 0 : 1;
}
EOF
pc="PKG_CONFIG_PATH=$sdk/lib/pkgconfig"
in_room env "$pc" bash -c "cd '$room/c' && cc -o seed seed.c \$(pkg-config --cflags --libs nexxo_cache) -Wl,-rpath,'$sdk/lib'"
out="$(in_room "$room/c/seed" "$room/c/cache-shared")"
[ "$out" = "$version entries=1000 hits=1000 disabled=0" ] || { echo "C (shared): $out" >&2; exit 1; }
ok "C through pkg-config, shared library: $out"
# Static: the archive and what it needs (the .pc file's Libs.private).
in_room env "$pc" bash -c "cd '$room/c' && cc -o seed-static seed.c \$(pkg-config --cflags nexxo_cache) '$sdk/lib/libnexxo_cache.a' \
  $(sed -n 's/^Libs.private: //p' "$sdk/lib/pkgconfig/nexxo_cache.pc")"
in_room readelf -d "$room/c/seed-static" | grep -q 'libnexxo_cache' && { echo "C (static): still links the shared library" >&2; exit 1; }
out="$(in_room "$room/c/seed-static" "$room/c/cache-static")"
[ "$out" = "$version entries=1000 hits=1000 disabled=0" ] || { echo "C (static): $out" >&2; exit 1; }
ok "C, static library: $out"

mkdir -p "$room/cpp"
cat >"$room/cpp/CMakeLists.txt" <<'EOF'
cmake_minimum_required(VERSION 3.16)
project(seed_cpp CXX)
set(CMAKE_CXX_STANDARD 17)
find_package(nexxo_cache 1 REQUIRED)
add_executable(seed seed.cpp)
target_link_libraries(seed PRIVATE nexxo_cache::nexxo_cache)
EOF
cat >"$room/cpp/seed.cpp" <<'EOF'
// The seed workload through the C++ wrapper, found with CMake's find_package.
#include <nexxo_cache.hpp>
#include <cstdio>
#include <string>
int main(int, char **argv) {
  auto cache = nexxo::Cache::open(argv[1]);
  for (int i = 0; i < 1000; i++)
    cache.set("transform", "src/m" + std::to_string(i) + ".ts", std::string(1024, char('a' + i % 26)));
  for (int i = 0; i < 1000; i++) {
    auto v = cache.get("transform", "src/m" + std::to_string(i) + ".ts");
    if (!v || std::string(v->begin(), v->end()) != std::string(1024, char('a' + i % 26))) return 1;
  }
  auto s = cache.stats();
  std::printf("entries=%llu hits=%llu\n", (unsigned long long)s.entries, (unsigned long long)s.hits);
  return s.entries == 1000 && s.hits == 1000 ? 0 : 1;
}
EOF
in_room cmake -S "$room/cpp" -B "$room/cpp/build" -DCMAKE_PREFIX_PATH="$sdk" -DCMAKE_BUILD_TYPE=Release >/dev/null
in_room cmake --build "$room/cpp/build" >/dev/null
out="$(in_room "$room/cpp/build/seed" "$room/cpp/cache")"
[ "$out" = "entries=1000 hits=1000" ] || { echo "C++: $out" >&2; exit 1; }
ok "C++ through find_package(nexxo_cache): $out"

out="$(in_room "$sdk/bin/nexxo-cache" stats --json --dir "$room/c/cache-shared")"
grep -q '"entries":1000' <<<"$out" || { echo "nexxo-cache stats: $out" >&2; exit 1; }
ok "the command reads the C cache: $(grep -o '"entries":[0-9]*' <<<"$out" | head -1)"

log "install-test: npm install of the packed packages, offline"
mkdir -p "$room/node"
cat >"$room/node/package.json" <<'EOF'
{ "name": "seed-app", "version": "1.0.0", "private": true }
EOF
in_room bash -c "cd '$room/node' && npm install --offline --no-audit --no-fund --loglevel=error \
  $koffi_tgz '$dist/npm/nexxo-cache-$version.tgz' '$dist/npm/nexxo-cache-linux-x64-gnu-$version.tgz' >/dev/null"
[ -f "$room/node/node_modules/@nexxo-cache/linux-x64-gnu/libnexxo_cache.so.1" ] || { echo "npm: the platform package is not installed" >&2; exit 1; }
cat >"$room/node/seed.js" <<'EOF'
// The seed's API as a build tool calls it: getCacheManager, per-key get/set.
const { getCacheManager, nativeVersion } = require('nexxo-cache');
(async () => {
  const root = process.argv[2];
  const m = getCacheManager(root);
  const value = (i) => Buffer.from(`export const m${i} = ${JSON.stringify('x'.repeat(1000))};`.slice(0, 1024));
  for (let i = 0; i < 1000; i++) m.set('transform', `src/m${i}.ts`, value(i));
  await m.flush();
  for (let i = 0; i < 1000; i++) {
    const v = m.get('transform', `src/m${i}.ts`);
    if (!v || !v.equals(value(i))) throw new Error(`key ${i}: ${v}`);
  }
  const s = m.getStats();
  if (s.disabled) throw new Error(`disabled: ${s.disabled}`);
  m.close();
  // The library loaded as its own Node-API module: this path never needs koffi.
  const koffi = Object.keys(require.cache).some((k) => k.includes('/koffi/'));
  console.log(`${nativeVersion()} entries=${s.entries} hits=${s.hits} size=${s.size} koffi=${koffi}`);
})().catch((e) => { console.error(e); process.exit(1); });
EOF
cat >"$room/node/seed.mjs" <<'EOF'
import { getCacheManager } from 'nexxo-cache';
import cjs from 'nexxo-cache';
const m = getCacheManager(process.argv[2]);
if (cjs.getCacheManager !== getCacheManager) throw new Error('the import and require entries differ');
const v = m.get('transform', 'src/m7.ts');
const s = m.getStats();
if (s.disabled || !v) throw new Error(`import: ${s.disabled} ${v}`);
console.log(`import: entries=${s.entries}`);
m.close();
EOF
out="$(in_room bash -c "cd '$room/node' && node seed.js '$room/node/project'")"
grep -qx "$version entries=1000 hits=1000 size=.* koffi=false" <<<"$out" || { echo "Node: $out" >&2; exit 1; }
ok "Node require('nexxo-cache') with @nexxo-cache/linux-x64-gnu: $out"
out="$(in_room bash -c "cd '$room/node' && node seed.mjs '$room/node/project'")"
[ "$out" = "import: entries=1000" ] || { echo "Node import: $out" >&2; exit 1; }
ok "Node import from 'nexxo-cache': $out"

# Without the platform package (optional dependencies omitted): one message naming it.
mkdir -p "$room/node-bare"
echo '{ "name": "bare-app", "version": "1.0.0", "private": true }' >"$room/node-bare/package.json"
in_room bash -c "cd '$room/node-bare' && npm install --offline --omit=optional --no-audit --no-fund --loglevel=error \
  $koffi_tgz '$dist/npm/nexxo-cache-$version.tgz' >/dev/null"
[ ! -e "$room/node-bare/node_modules/@nexxo-cache" ] || { echo "npm --omit=optional installed the platform package" >&2; exit 1; }
out="$(in_room bash -c "cd '$room/node-bare' && node -e \"
  const { Cache, getCacheManager } = require('nexxo-cache');
  try { Cache.open('$room/node-bare/c'); console.log('opened'); } catch (e) { console.log(e.code + ': ' + e.message.split('\\\\n')[0]); }
  console.log(String(getCacheManager('$room/node-bare').getStats().disabled).split('\\\\n')[0]);
\" 2>/dev/null")"
want="LIBRARY_NOT_FOUND: The prebuilt library for linux-x64 is not installed: run \`npm install @nexxo-cache/linux-x64-gnu@$version\`"
grep -qF "$want" <<<"$(head -1 <<<"$out")" || { echo "Node without the platform package: $out" >&2; exit 1; }
grep -qF "npm install @nexxo-cache/linux-x64-gnu@$version" <<<"$(tail -1 <<<"$out")" || { echo "Node manager without the platform package: $out" >&2; exit 1; }
ok "Node without the platform package: $(head -1 <<<"$out" | cut -c1-120)..."

log "install-test: go get $go_module@v$version from a file:// GOPROXY"
mkdir -p "$room/go"
cat >"$room/go/main.go" <<EOF
package main

import (
	"bytes"
	"fmt"
	"os"

	nexxocache "$go_module"
)

func main() {
	c, err := nexxocache.Open(os.Args[1], nil)
	if err != nil {
		panic(err)
	}
	defer c.Close()
	val := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 1024) }
	for i := 0; i < 1000; i++ {
		if err := c.Set("transform", []byte(fmt.Sprintf("src/m%d.ts", i)), val(i)); err != nil {
			panic(err)
		}
	}
	for i := 0; i < 1000; i++ {
		v, found, err := c.Get("transform", []byte(fmt.Sprintf("src/m%d.ts", i)))
		if err != nil || !found || !bytes.Equal(v, val(i)) {
			panic(fmt.Sprintf("key %d: found=%v err=%v", i, found, err))
		}
	}
	s, _ := c.Stats()
	fmt.Printf("entries=%d hits=%d\n", s.Entries, s.Hits)
}
EOF
goenv=(GOPROXY="file://$dist/goproxy" GOSUMDB=off GOTOOLCHAIN=local GOFLAGS=-modcacherw
  GOPATH="$room/gopath" GOCACHE="$room/gocache" PKG_CONFIG_PATH="$sdk/lib/pkgconfig" CGO_LDFLAGS="-Wl,-rpath,$sdk/lib")
in_room env "${goenv[@]}" bash -c "cd '$room/go' && go mod init example.com/seed >/dev/null 2>&1 && go get '$go_module@v$version' >/dev/null 2>&1 && go build -o seed ."
out="$(in_room "$room/go/seed" "$room/go/cache")"
[ "$out" = "entries=1000 hits=1000" ] || { echo "Go: $out" >&2; exit 1; }
ok "Go (go get $go_module@v$version, cgo through pkg-config): $out"

log "install-test: zig fetch of the Zig package, built against the SDK"
mkdir -p "$room/zig"
zigenv=(ZIG_GLOBAL_CACHE_DIR="$room/zig-global" ZIG_LOCAL_CACHE_DIR="$room/zig/.zig-cache")
in_room env "${zigenv[@]}" bash -c "cd '$room/zig' && zig init --minimal >/dev/null 2>&1 && \
  zig fetch --save=nexxo_cache '$dist/nexxo-cache-zig-$version.tar.gz' >/dev/null"
cat >"$room/zig/build.zig" <<'EOF'
const std = @import("std");
pub fn build(b: *std.Build) void {
    const target = b.standardTargetOptions(.{});
    const optimize = b.standardOptimizeOption(.{});
    const sdk = b.option([]const u8, "sdk", "the unpacked nexxo-cache SDK") orelse @panic("-Dsdk=<dir>");
    const nx = b.dependency("nexxo_cache", .{ .target = target, .optimize = optimize, .sdk = sdk });
    const exe = b.addExecutable(.{ .name = "seed", .root_module = b.createModule(.{
        .root_source_file = b.path("seed.zig"),
        .target = target,
        .optimize = optimize,
        .imports = &.{.{ .name = "nexxo_cache", .module = nx.module("nexxo_cache") }},
    }) });
    b.installArtifact(exe);
}
EOF
cat >"$room/zig/seed.zig" <<'EOF'
const std = @import("std");
const nx = @import("nexxo_cache");
pub fn main() !void {
    var gpa: std.heap.GeneralPurposeAllocator(.{}) = .{};
    defer _ = gpa.deinit();
    const a = gpa.allocator();
    const args = try std.process.argsAlloc(a);
    defer std.process.argsFree(a, args);
    var cache = try nx.Cache.open(args[1], .{});
    defer cache.close();
    var key: [32]u8 = undefined;
    var val: [1024]u8 = undefined;
    for (0..1000) |i| {
        @memset(&val, @intCast('a' + i % 26));
        try cache.set("transform", try std.fmt.bufPrint(&key, "src/m{d}.ts", .{i}), &val);
    }
    for (0..1000) |i| {
        @memset(&val, @intCast('a' + i % 26));
        const v = (try cache.get(a, "transform", try std.fmt.bufPrint(&key, "src/m{d}.ts", .{i}))) orelse return error.Missing;
        defer a.free(v);
        if (!std.mem.eql(u8, v, &val)) return error.Mismatch;
    }
    const s = try cache.stats();
    var buf: [64]u8 = undefined;
    try std.fs.File.stdout().writeAll(try std.fmt.bufPrint(&buf, "entries={d} hits={d}\n", .{ s.entries, s.hits }));
}
EOF
in_room env "${zigenv[@]}" bash -c "cd '$room/zig' && zig build -Dsdk='$sdk' >/dev/null"
out="$(in_room "$room/zig/zig-out/bin/seed" "$room/zig/cache")"
[ "$out" = "entries=1000 hits=1000" ] || { echo "Zig: $out" >&2; exit 1; }
ok "Zig (zig fetch --save of nexxo-cache-zig-$version.tar.gz, -Dsdk): $out"

log "install-test: every artifact installed and ran the seed workload"
