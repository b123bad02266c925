#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# bench/peers/ejabberd.sh — a private ejabberd node for bench/compare.sh's
# chat-server peer (and test_bench_smoke's xmpp run).
#
#   bench/peers/ejabberd.sh --check      # exit 0 where ejabberd is installed
#   bench/peers/ejabberd.sh PORT DIR     # runs ejabberd in the foreground: c2s on
#                                        # 127.0.0.1:PORT, domain localhost, config,
#                                        # mnesia spool and log under DIR
#
# The process that runs is the Erlang VM itself (this script execs erl, which
# execs erlexec, which execs beam.smp): its pid is $! for the caller, the one
# chatbench --broker-pid measures. No Erlang distribution (no node name), so
# no epmd and no distribution port. SIGTERM stops it in order.
#
# Config: users in mnesia with plain passwords (SASL PLAIN, no TLS on loopback,
# as the MQTT side), registered in-band by chatbench (--xmpp-register) before
# it measures — registration_timeout infinity, else one registration per IP
# per 10 minutes; mod_offline stores what an offline user is sent;
# mod_stream_mgmt answers XEP-0198 <r/>s; no shaper (the example config
# throttles c2s to 1 kB/s); a listen backlog of 1024 (the default, 5, left
# some of 5,000 connects hanging).
# Environment: EJABBERD_LIBS (default: the directory holding Debian's
# ejabberd-*/ebin, /usr/lib/<arch>).
set -euo pipefail

libs=${EJABBERD_LIBS:-}
if [ -z "$libs" ]; then
  for d in /usr/lib/*/ejabberd-*/ebin /usr/lib/ejabberd-*/ebin; do
    [ -d "$d" ] && { libs=$(dirname "$(dirname "$d")"); break; }
  done
fi
installed() {
  [ -n "$libs" ] && ls -d "$libs"/ejabberd-*/ebin > /dev/null 2>&1 && command -v erl > /dev/null 2>&1
}
if [ "${1:-}" = --check ]; then
  installed
  exit
fi
[ $# -eq 2 ] || { echo "usage: $0 --check | PORT DIR" >&2; exit 2; }
installed || { echo "ejabberd.sh: ejabberd is not installed (scripts/deps.sh bench)" >&2; exit 1; }
port=$1 dir=$2
mkdir -p "$dir"
cat > "$dir/ejabberd.yml" <<CONF
hosts: ["localhost"]
loglevel: warning
log_rotate_count: 0
listen:
  - port: $port
    ip: "127.0.0.1"
    module: ejabberd_c2s
    max_stanza_size: 262144
    backlog: 1024
auth_method: internal
auth_password_format: plain
registration_timeout: infinity
access_rules:
  register:
    allow: all
  c2s:
    allow: all
modules:
  mod_offline: {}
  mod_roster: {}
  mod_stream_mgmt: {}
  mod_disco: {}
  mod_register:
    ip_access: all
    access: register
CONF
export HOME=$dir EJABBERD_CONFIG_PATH=$dir/ejabberd.yml EJABBERD_LOG_PATH=$dir/ejabberd.log \
  ERL_LIBS=$libs ERL_CRASH_DUMP=$dir/erl_crash.dump
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
exec erl -noinput -noshell +K true +P 250000 -mnesia dir "\"$dir/spool\"" -s ejabberd < /dev/null
