#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# Builds mosquitto from Debian's own source package with the patches of this
# folder: the broker the plugin's extra events need (docs/BROKER-PATCHES.md).
#
#   broker-patches/build.sh [--stock|--asan] [BUILD_DIR]
#
# Fetches the source of the installed mosquitto version (`apt-get source`,
# through a private apt state under BUILD_DIR whose deb-src entries are
# derived from the system's Debian entries: the host's apt configuration is
# left as it is), unpacks it once, copies it to a fresh tree, applies the
# patches listed in `series` in order and the test-suite patches, and builds
# the broker alone (no docs, no clients) with Debian's features (TLS,
# WebSockets, systemd notify). Output: BUILD_DIR/mosquitto-patched/mosquitto
# (default BUILD_DIR: build), and the tree it came from beside it, whose
# test/ is mosquitto's own suite. With --stock the same steps without the
# broker patches give BUILD_DIR/mosquitto-stock/mosquitto, the baseline
# for that suite. With --asan: the patched broker itself built with
# AddressSanitizer + UBSan, BUILD_DIR/mosquitto-asan/mosquitto (for the
# tests of the patches' own code, e.g. test_ack_defer; ~2 min).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
kind=patched
cflags=()
case ${1:-} in
  --stock) kind=stock; shift ;;
  --asan)
    kind=asan
    san="-fsanitize=address,undefined"
    cflags=("CFLAGS=-Wall -ggdb -O1 -fno-omit-frame-pointer $san"
            "LDFLAGS=-Wl,--export-dynamic $san")
    shift ;;
esac
build=$(mkdir -p "${1:-build}" && cd "${1:-build}" && pwd)
out=$build/mosquitto-$kind
cache=$build/mosquitto-source     # shared by both kinds: fetched once

log() { echo "broker-patches: $*" >&2; }

# ---- the source package, once ----
version=$(dpkg-query -W -f='${Version}' mosquitto 2>/dev/null || true)
[ -n "$version" ] || { log "mosquitto is not installed (scripts/deps.sh installs it)"; exit 1; }
upstream=${version%%-*}
upstream=${upstream#*:}
srcdir=$cache/mosquitto-$upstream
if [ ! -f "$cache/.fetched-$version" ]; then
  log "fetching the source of mosquitto $version"
  rm -rf "$cache"
  mkdir -p "$cache/apt/sources.list.d" "$cache/apt/lists/partial" "$cache/apt/archives/partial"
  # deb-src twins of the system's Debian entries (deb822 and one-line
  # formats); the archive addresses come from the system, never from here.
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    sed 's/^Types:.*\bdeb\b.*/Types: deb-src/' "$f" > "$cache/apt/sources.list.d/$(basename "$f")"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" > "$cache/apt/sources.list.d/$(basename "$f")"
  done
  apt_opts=(-o Dir::Etc::SourceList=/dev/null
            -o Dir::Etc::SourceParts="$cache/apt/sources.list.d"
            -o Dir::State::Lists="$cache/apt/lists"
            -o Dir::Cache="$cache/apt"
            -o APT::Sandbox::User=root)
  apt-get -qq "${apt_opts[@]}" update
  # The installed version when the archive still has it, so the patched
  # broker differs from the stock one by the patches only.
  if ! (cd "$cache" && apt-get -qq "${apt_opts[@]}" source "mosquitto=$version" >/dev/null); then
    log "mosquitto $version is no longer in the archive; taking its current source"
    (cd "$cache" && apt-get -qq "${apt_opts[@]}" source mosquitto >/dev/null)
  fi
  srcdir=$(ls -d "$cache"/mosquitto-*/ | head -n 1)
  srcdir=${srcdir%/}
  rm -rf "$cache/apt"
  touch "$cache/.fetched-$version"
fi
[ -d "$srcdir" ] || { log "no source tree in $cache"; exit 1; }

# ---- a fresh tree, patched ----
rm -rf "$out"
mkdir -p "$out"
cp -a "$srcdir" "$out/tree"
apply() {
  log "applying $(basename "$1")"
  patch -d "$out/tree" -p1 --batch --forward --quiet < "$1"
}
for p in "$here"/test-suite/*.patch; do apply "$p"; done
if [ "$kind" != stock ]; then
  while read -r p; do
    case $p in ''|'#'*) continue ;; esac
    apply "$here/$p"
  done < "$here/series"
fi

# ---- the broker ----
# Debian's binary (built with CMake) exports all its symbols, and plugins
# built for it use that (mosquitto_strerror & co. are compiled into the
# broker, not taken from libmosquitto): --export-dynamic does the same.
log "building the $kind broker ($(basename "$srcdir"))"
make -C "$out/tree/src" -j "$(nproc)" WITH_DOCS=no WITH_WEBSOCKETS=yes WITH_SYSTEMD=yes \
  WITH_SRV=no WITH_STRIP=no LDFLAGS=-Wl,--export-dynamic "${cflags[@]}" > "$out/build.log" 2>&1 || {
  tail -n 40 "$out/build.log" >&2
  log "build failed (full log: $out/build.log)"
  exit 1
}
cp "$out/tree/src/mosquitto" "$out/mosquitto"
log "built $out/mosquitto"
