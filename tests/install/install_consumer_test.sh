#!/usr/bin/env bash
# Installs libferry from a build tree into a fresh prefix and builds an outside program
# against it twice: with CMake (find_package(Ferry) -> Ferry::ferry) and with pkg-config.
# Both programs must run and must load libferry from the prefix, not from the build tree.
#   install_consumer_test.sh BUILD_DIR CONSUMER_SOURCE_DIR
set -euo pipefail

BUILD=${1:?usage: install_consumer_test.sh BUILD_DIR CONSUMER_SOURCE_DIR}
CONSUMER=${2:?usage: install_consumer_test.sh BUILD_DIR CONSUMER_SOURCE_DIR}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

PREFIX=$TMP/prefix
for component in ferry_runtime ferry_development; do
  cmake --install "$BUILD" --prefix "$PREFIX" --component "$component" > /dev/null
done
# What a developer package holds, and nothing from the source tree's internals.
for path in include/ferry/transfer_engine.h include/ferry/segment.h include/ferry/status.h \
            include/ferry/version.h; do
  [[ -f $PREFIX/$path ]] || fail "$path was not installed"
done
[[ ! -e $PREFIX/include/transfer && ! -e $PREFIX/include/common ]] ||
  fail "internal headers were installed"
LIBDIR=$(dirname "$(find "$PREFIX" -name 'libferry.so' | head -n 1)")
[[ -n $LIBDIR && -d $LIBDIR/cmake/Ferry && -f $LIBDIR/pkgconfig/ferry.pc ]] ||
  fail "libferry.so, lib/cmake/Ferry or lib/pkgconfig/ferry.pc missing under $PREFIX"

# The installed tree must not depend on where it was installed: move it before use.
mv "$PREFIX" "$TMP/moved"
PREFIX=$TMP/moved
LIBDIR=$(dirname "$(find "$PREFIX" -name 'libferry.so' | head -n 1)")

# loaded_from BINARY: the libferry the dynamic loader picks for BINARY.
loaded_from() { ldd "$1" | awk '/libferry\.so/ {print $3}'; }
check_run() {
  local binary=$1 how=$2 lib
  lib=$(loaded_from "$binary")
  [[ $lib == "$LIBDIR"/* ]] || fail "$how: loads libferry from '$lib', not from $LIBDIR"
  "$binary" | tee "$TMP/$how.out"
  grep -q "consumer OK" "$TMP/$how.out" || fail "$how: the program did not report OK"
  echo "ok: $how"
}

# 1. CMake package.
cmake -S "$CONSUMER" -B "$TMP/cmake-build" -G Ninja -DCMAKE_PREFIX_PATH="$PREFIX" \
  -DCMAKE_BUILD_RPATH="$LIBDIR" > "$TMP/cmake-configure.log" ||
  { cat "$TMP/cmake-configure.log"; fail "find_package(Ferry) configure"; }
cmake --build "$TMP/cmake-build" > "$TMP/cmake-build.log" ||
  { cat "$TMP/cmake-build.log"; fail "build with Ferry::ferry"; }
check_run "$TMP/cmake-build/consumer" find_package

# 2. pkg-config.
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig
[[ $(pkg-config --modversion ferry) == [0-9]*.[0-9]*.[0-9]* ]] || fail "pkg-config --modversion"
# shellcheck disable=SC2046  # pkg-config prints several words on purpose
c++ -std=c++20 -o "$TMP/consumer-pc" "$CONSUMER/consumer.cc" $(pkg-config --cflags --libs ferry) \
  -Wl,-rpath,"$(pkg-config --variable=libdir ferry)" || fail "build with pkg-config"
check_run "$TMP/consumer-pc" pkg-config
