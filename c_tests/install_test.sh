#!/usr/bin/env bash
# Installs the build into a temporary prefix, then builds and runs a consumer outside
# the tree with pkg-config and with CMake's find_package (shared and static), and checks
# that the shared library exports only nexxo_ symbols and carries its SONAME.
set -euo pipefail
build="$1"
consumer="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
lib="$prefix/lib"
[ -d "$lib" ] || lib="$(dirname "$(find "$prefix" -name libnexxo_cache.a | head -n1)")"

for f in libnexxo_cache.so libnexxo_cache.so.1 libnexxo_cache.a pkgconfig/nexxo_cache.pc cmake/nexxo_cache/nexxo_cacheConfig.cmake; do
  [ -e "$lib/$f" ] || { echo "not installed: $lib/$f" >&2; exit 1; }
done
[ -e "$prefix/include/nexxo_cache.h" ] && [ -e "$prefix/include/nexxo_cache.hpp" ] || { echo "headers not installed" >&2; exit 1; }
"$prefix/bin/nexxo-cache" --version | grep -q '^nexxo-cache [0-9]' || { echo "the nexxo-cache command is not installed" >&2; exit 1; }

soname=$(readelf -d "$lib/libnexxo_cache.so" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
[ "$soname" = "libnexxo_cache.so.1" ] || { echo "SONAME is '$soname'" >&2; exit 1; }
# napi_register_module_v1: the library is also a Node-API module (src/node.rs).
stray=$(nm -D --defined-only "$lib/libnexxo_cache.so" | awk '{print $3}' | grep -v '^nexxo_' | grep -vx 'napi_register_module_v1' || true)
[ -z "$stray" ] || { echo "exported symbols without the nexxo_ prefix:" >&2; echo "$stray" | head >&2; exit 1; }

echo "-- pkg-config"
flags=$(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --cflags --libs nexxo_cache)
cc -Wall -Werror -o "$work/pc_consumer" "$consumer/main.c" $flags -Wl,-rpath,"$lib"
"$work/pc_consumer" "$work/cache-pc"
static=$(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --static --libs nexxo_cache)
cc -Wall -Werror -o "$work/pc_static" "$consumer/main.c" $(PKG_CONFIG_PATH="$lib/pkgconfig" pkg-config --cflags nexxo_cache) \
  -Wl,-Bstatic -lnexxo_cache -Wl,-Bdynamic ${static/-lnexxo_cache/}
"$work/pc_static" "$work/cache-pc-static"

echo "-- find_package"
cmake -S "$consumer" -B "$work/cm" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_RPATH="$lib" >/dev/null
cmake --build "$work/cm" >/dev/null
"$work/cm/consumer" "$work/cache-cm"
"$work/cm/consumer_static" "$work/cache-cm-static"
echo "install test passed"
