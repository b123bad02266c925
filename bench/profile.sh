#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# bench/profile.sh — where the broker (or the key server) spends its time in
# one chatbench mode, with valgrind's callgrind (inclusive instruction counts
# per function) and, with --perf, perf's sampled cycles (kernel included).
#
#   bench/profile.sh dm|relay|replay|keys|fanout|fanout-offline [--perf] [--out DIR]
#
# callgrind slows the profiled process ~50x, so the counts are small; the
# shares, not the rates, are the result. Prints the top inclusive functions
# (callgrind_annotate --inclusive=yes) and, with --perf, the top symbols.
# fanout: one sender, a group of MEMBERS (1000) members online, MSGS (100) sends;
# fanout-offline: the same with the members offline (store/queue only).
# Environment: MOSQUITTO (the broker binary, default /usr/sbin/mosquitto; e.g.
# build/mosquitto-patched/mosquitto), BENCH_ARGS (more chatbench arguments, e.g.
# --no-receipts on the patched broker), BUILD (default <repo>/build), MSGS, MEMBERS, ACK_DELAY_US (dm, fanout: under
# callgrind a 20 ms receipt flush acknowledges almost every message alone), OPTS (extra
# plugin options, "name value" per line; unset, replay gets "inflight_drain 100000" as in
# compare.sh, or the fill's `sent` events spill through the sender's queue and dominate the
# profile; OPTS= (empty) passes none).
set -euo pipefail

case ${1:-} in -h|--help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;; esac

# The first n lines of stdin. Unlike head it reads to the end, so the writer
# never gets SIGPIPE, which under pipefail would fail the pipeline and, with
# set -e, end the script after the first report.
first() { awk -v n="$1" 'NR <= n'; }

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$repo/build}
case $build in /*) ;; *) build=$repo/$build ;; esac
mode=${1:?usage: profile.sh dm|relay|replay|keys|fanout|fanout-offline [--perf] [--out DIR]}
shift
bmode=$mode
case $mode in fanout*) bmode=fanout ;; esac
use_perf=0 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --perf) use_perf=1 ;;
    --out) out=$2; shift ;;
    *) echo "profile: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
tmp=$(mktemp -d /tmp/chat-profile.XXXXXX)
[ -n "$out" ] || out=$tmp
mkdir -p "$out"
pids=()
cleanup() { local p; for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null; done; [ "$out" = "$tmp" ] || rm -rf "$tmp"; }
trap cleanup EXIT

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$tmp/data"
{
  echo "listener $port 127.0.0.1"
  echo "set_tcp_nodelay true"
  if [ "$mode" = relay ]; then echo "allow_anonymous true"; else
    echo "plugin $build/lib/mosquitto_chat.so"; echo "plugin_opt_data_dir $tmp/data"
    echo "plugin_opt_send_rate 0"   # capacity is profiled, not the per-device limit
    opts=${OPTS-}
    [ "$mode" = replay ] && [ -z "${OPTS+x}" ] && opts="inflight_drain 100000"
    if [ -n "$opts" ]; then printf '%s\n' "$opts" | sed '/^$/d; s/^/plugin_opt_/'; fi
  fi
  echo "log_dest file $tmp/mosquitto.log"
  echo "log_type error"
  if [ "$(id -u)" -eq 0 ]; then echo "user root"; fi
} > "$tmp/mosquitto.conf"

mosq=${MOSQUITTO:-/usr/sbin/mosquitto}
vg=(valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.%p")
target=broker
[ "$mode" = keys ] && target=${PROFILE_TARGET:-keyserver}
if [ $use_perf -eq 1 ] || [ "$target" != broker ]; then
  "$mosq" -c "$tmp/mosquitto.conf" > "$tmp/broker.out" 2>&1 &
else
  "${vg[@]}" "$mosq" -c "$tmp/mosquitto.conf" > "$tmp/broker.out" 2>&1 &
fi
bpid=$!
pids+=("$bpid")
for _ in $(seq 400); do
  /usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$port" 2>/dev/null \
    && { [ "$mode" = relay ] || [ -s "$tmp/data/admin.token" ]; } && break
  sleep 0.1
done
args=(-p "$port" --broker-pid "$bpid" --timeout 300)
[ "$mode" = relay ] || args+=(--admin-token-file "$tmp/data/admin.token")
kpid=""
if [ "$mode" = keys ]; then
  "$build/bin/chatctl" -p "$port" --token-file "$tmp/data/admin.token" service add keys > "$tmp/keys.token"
  ks=("$build/bin/chat-keyserver" -h 127.0.0.1 -p "$port" -u keys --token-file "$tmp/keys.token"
      --data-dir "$tmp/keys" --rate-burst 1000000 --rate-refill-seconds 0 --log-level warning)
  if [ "$target" = keyserver ] && [ $use_perf -eq 0 ]; then ks=("${vg[@]}" "${ks[@]}"); fi
  "${ks[@]}" > "$tmp/keyserver.log" 2>&1 &
  kpid=$!
  pids+=("$kpid")
  sleep 3
  args+=(--ks-pid "$kpid")
fi
case $mode in
  relay) args+=(--msgs "${MSGS:-20000}") ;;
  dm) args+=(--msgs "${MSGS:-5000}" --ack-delay-us "${ACK_DELAY_US:-20000}") ;;
  replay) args+=(--msgs "${MSGS:-5000}" --ack-batch 100) ;;
  keys) args+=(--msgs "${MSGS:-3000}") ;;
  fanout) args+=(--msgs "${MSGS:-100}" --members "${MEMBERS:-1000}" --ack-delay-us "${ACK_DELAY_US:-20000}") ;;
  fanout-offline) args+=(--offline --msgs "${MSGS:-200}" --members "${MEMBERS:-1000}") ;;
esac
perf_pid=$bpid
[ "$target" = keyserver ] && perf_pid=$kpid
if [ $use_perf -eq 1 ]; then
  # cpu-clock: a software event, so it samples on VMs without a PMU too
  perf record -e cpu-clock -F 1999 -g --call-graph dwarf,16384 -p "$perf_pid" -o "$out/perf.data" > "$tmp/perf.log" 2>&1 &
  ppid=$!
  sleep 1
fi
# shellcheck disable=SC2086 # BENCH_ARGS: words
"$build/bin/chatbench" "$bmode" "${args[@]}" ${BENCH_ARGS:-}
if [ $use_perf -eq 1 ]; then
  kill -INT "$ppid"; wait "$ppid" 2>/dev/null || true
  perf report -i "$out/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null \
    | grep '%' | first 40 | cut -c1-140
  echo "---- inclusive (children) ----"
  perf report -i "$out/perf.data" --children --sort symbol --stdio -g none 2>/dev/null \
    | grep '%' | first 60 | cut -c1-140
else
  # stop the profiled process so callgrind writes its file
  [ "$target" = keyserver ] && p=$kpid || p=$bpid
  kill "$p"; wait "$p" 2>/dev/null || true
  f=$(ls -t "$out"/callgrind.* | first 1)
  callgrind_annotate --inclusive=yes "$f" 2>/dev/null | first 70 | cut -c1-160
fi
