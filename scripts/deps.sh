#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# Installs the Debian packages mosquitto-chat needs to build, run and test,
# and the web client's node modules (npm ci with the committed lockfile).
# Idempotent and quiet when everything is present; needs root (or sudo) only
# when a package is missing.
set -euo pipefail

pkgs=(
  build-essential cmake pkg-config
  mosquitto mosquitto-clients jq mosquitto-dev libmosquitto-dev
  libsodium-dev librocksdb-dev libcbor-dev check libcjson-dev
  # chat-pushgw: libcurl (OpenSSL flavour, HTTP/2 through nghttp2) for
  # HTTPS/HTTP-2 to FCM and APNs, OpenSSL (libssl-dev, below) for the
  # RS256/ES256 JWTs, cJSON for service-account files and provider answers
  libcurl4-openssl-dev
  # chat-media: its HTTP(S) side (uploads, ranged downloads; TLS via GnuTLS)
  libmicrohttpd-dev
  python3 python3-paho-mqtt python3-cbor2 python3-nacl
  # test_tls makes its CA and certificates at test time
  openssl
  # test_push_providers: local HTTPS HTTP/2 FCM/APNs/OAuth stand-ins (h2)
  # that verify the gateway's JWTs (cryptography)
  python3-h2 python3-cryptography
  # test_prometheus parses chatctl stats --prometheus with Prometheus' own
  # text-format parser
  python3-prometheus-client
  # test_man renders the man pages (groff) and checks them as man -l does
  groff-base man-db
  # the licence test: every file says its licence (reuse lint, REUSE 3.0)
  reuse
  chromium
  # test_readme runs make run in a network namespace of its own (unshare and
  # nsenter from util-linux, ip to bring its loopback up)
  iproute2 util-linux
  # broker-patches/build.sh: apt-get source (dpkg-dev), patch, and what
  # Debian's mosquitto broker links (TLS, WebSockets, systemd notify)
  dpkg-dev patch libssl-dev libwebsockets-dev libsystemd-dev
  # cluster mode (issue 27, docs/CLUSTER.md): chat-keyserver --cluster-urls
  # keeps its keys in NATS JetStream through libnats (the C client), and the
  # cluster tests start their own nats-server JetStream nodes
  nats-server libnats-dev
)
# The web client builds with node and npm; a machine that has them from
# elsewhere (a newer Node.js) keeps them.
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
# `scripts/deps.sh bench` adds gnuplot-nox (plots of bench/compare.sh --plots)
# and ejabberd (the chat server bench/compare.sh runs as a peer, a private
# node of its own; installed without starting Debian's system service, below);
# `scripts/deps.sh fuzz` adds clang and libclang-rt-14-dev (libFuzzer and the
# ASan/UBSan runtimes, for make fuzz); `scripts/deps.sh mosquitto-tests`
# adds what mosquitto's own test suite needs (make mosquitto-tests). None
# is part of the default set.
for extra in "$@"; do
  case $extra in
    bench) pkgs+=(gnuplot-nox ejabberd) ;;
    fuzz) pkgs+=(clang libclang-rt-14-dev) ;;
    mosquitto-tests) pkgs+=(python3-psutil openssl) ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deps: installing ${missing[*]}" >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "deps: need root to install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  # ejabberd: Debian starts its system service on install (c2s on every
  # interface's 5222, s2s 5269, HTTP 5280/5443, and epmd on 4369); compare.sh
  # never uses it (it runs a private node on loopback). So a policy-rc.d that
  # refuses every start while apt runs (unless the machine has one already,
  # as containers do), and the service disabled afterwards.
  # Erlang's epmd.socket (4369) comes with it: disabled too, unless Erlang was
  # here before (then something else may use it).
  policy_rc="" had_erlang=0
  if dpkg-query -W -f='${Status}' erlang-base 2>/dev/null | grep -q "install ok installed"; then had_erlang=1; fi
  if [[ " ${missing[*]} " == *" ejabberd "* ]] && [ ! -e /usr/sbin/policy-rc.d ]; then
    policy_rc=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\n# scripts/deps.sh: no service starts while it installs ejabberd\nexit 101\n' |
      $sudo tee "$policy_rc" > /dev/null
    $sudo chmod 755 "$policy_rc"
  fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || {
    [ -z "$policy_rc" ] || $sudo rm -f "$policy_rc"; exit 1; }
  if [ -n "$policy_rc" ]; then $sudo rm -f "$policy_rc"; fi
  if [[ " ${missing[*]} " == *" ejabberd "* ]] && command -v systemctl >/dev/null; then
    $sudo systemctl disable --now ejabberd.service >/dev/null 2>&1 || true
    if [ $had_erlang -eq 0 ]; then $sudo systemctl disable --now epmd.socket epmd.service >/dev/null 2>&1 || true; fi
  fi
  # Debian starts the system mosquitto on :1883 when it installs it; make run
  # needs that port, and tests never use the system service.
  if command -v systemctl >/dev/null && systemctl is-active --quiet mosquitto 2>/dev/null; then
    $sudo systemctl stop mosquitto || true
  fi
fi

# The web client's modules, again whenever the lockfile is newer than the
# last install (npm records that in node_modules/.package-lock.json).
web=$(cd "$(dirname "$0")/../examples/web" && pwd)
if [ ! -e "$web/node_modules/.package-lock.json" ] || [ "$web/package-lock.json" -nt "$web/node_modules/.package-lock.json" ]; then
  echo "deps: npm ci in examples/web" >&2
  (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
