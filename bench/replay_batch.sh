#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# bench/replay_batch.sh — batched replay (docs/PROTOCOL.md §5, `batch`):
# chatbench replay of MSGS queued messages for one device that declares
# `batch`, with plugin_opt_replay_batch 1 (the v1 replay), 64 (the default)
# and 256, on stock mosquitto (the device's delivered receipts refill its
# window) and on the patched broker (its PUBACKs do), while a second pair
# sends live dms at LIVE_RATE msgs/s; REPS runs each, the median printed.
#
#   bench/replay_batch.sh [--reps N] [--msgs N] [--batches "1 64 256"] [--window W]
#                         [--live-rate R] [--no-patched] [--out FILE]
#
# Prints one line per run (chatbench's result line) into FILE (default a
# temp file) and a table of medians: replay msgs/s, broker CPU µs per
# message, the live pair's p50/p99 (µs). Short runs: a shared machine
# gives noisy numbers, quote medians (docs/BENCHMARKS.md, "Batched replay").
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$repo/build}
case $build in /*) ;; *) build=$repo/$build ;; esac
mosq=${MOSQUITTO:-/usr/sbin/mosquitto}
pmosq=$build/mosquitto-patched/mosquitto
bench=$build/bin/chatbench
plugin=$build/lib/mosquitto_chat.so

reps=3 msgs=60000 batches="1 64 256" window=400 live_rate=50 patched=1 out=""
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift ;;
    --msgs) msgs=$2; shift ;;
    --batches) batches=$2; shift ;;
    --window) window=$2; shift ;;
    --live-rate) live_rate=$2; shift ;;
    --no-patched) patched=0 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "replay_batch: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
for f in "$bench" "$plugin" "$mosq"; do
  [ -e "$f" ] || { echo "replay_batch: $f missing; run 'make build' first" >&2; exit 1; }
done
brokers="stock"
if [ $patched -eq 1 ]; then
  if [ -x "$pmosq" ]; then brokers="stock patched"; else
    echo "replay_batch: $pmosq missing (make patched-broker): stock only" >&2; fi
fi

tmp=$(mktemp -d /tmp/replay_batch.XXXXXX)
results=${out:-$tmp/results.txt}
: > "$results"
BPID=""
cleanup() {
  if [ -n "$BPID" ]; then kill "$BPID" 2>/dev/null || true; wait "$BPID" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_open() {
  /usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" 2>/dev/null
}

# start_broker BIN BATCH: the chat broker as compare.sh's replay phase has it
# (inflight_drain 100000: the fill's `sent` events do not spill), send_rate 0.
start_broker() {
  local bin=$1 batch=$2
  BDIR=$tmp/broker
  rm -rf "$BDIR"
  mkdir -p "$BDIR/data"
  BPORT=$(free_port)
  {
    echo "listener $BPORT 127.0.0.1"
    echo "set_tcp_nodelay true"
    echo "plugin $plugin"
    echo "plugin_opt_data_dir $BDIR/data"
    echo "plugin_opt_send_rate 0"
    echo "plugin_opt_inflight_drain 100000"
    echo "plugin_opt_inflight_window $window"
    echo "plugin_opt_replay_batch $batch"
    echo "log_dest file $BDIR/mosquitto.log"
    echo "log_type error"
    echo "log_type warning"
    if [ "$(id -u)" -eq 0 ]; then echo "user root"; fi
  } > "$BDIR/mosquitto.conf"
  "$bin" -c "$BDIR/mosquitto.conf" > "$BDIR/stderr" 2>&1 &
  BPID=$!
  local i
  for i in $(seq 200); do
    if port_open "$BPORT" && [ -s "$BDIR/data/admin.token" ]; then return 0; fi
    kill -0 "$BPID" 2>/dev/null || break
    sleep 0.05
  done
  echo "replay_batch: the broker did not start:" >&2
  tail -20 "$BDIR/stderr" "$BDIR/mosquitto.log" >&2 || true
  exit 1
}

for rep in $(seq "$reps"); do
  for b in $brokers; do
    bin=$mosq extra=(--ack-batch 100)
    if [ "$b" = patched ]; then bin=$pmosq extra=(--no-receipts); fi
    for n in $batches; do
      start_broker "$bin" "$n"
      line=$("$bench" replay -p "$BPORT" --broker-pid "$BPID" \
        --admin-token-file "$BDIR/data/admin.token" --msgs "$msgs" --caps batch \
        --live-rate "$live_rate" "${extra[@]}" --timeout 90 \
        --label "broker=$b replay_batch=$n window=$window rep=$rep" 2> "$tmp/bench.err") ||
        { echo "replay_batch: chatbench failed: $(tail -3 "$tmp/bench.err")" >&2; line="${line:-mode=error broker=$b replay_batch=$n ok=0}"; }
      echo "$line" >> "$results"
      echo "$line" | tr ' ' '\n' |
        grep -E '^(broker|replay_batch|rate|broker_cpu_us_per_msg|publishes|live_p99_us|ok)=' |
        tr '\n' ' ' >&2
      echo >&2
      kill "$BPID"; wait "$BPID" 2>/dev/null || true; BPID=""
    done
  done
done

/usr/bin/python3 - "$results" <<'EOF'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kv = dict(f.split("=", 1) for f in line.split() if "=" in f)
    if kv.get("mode") != "replay":
        continue
    key = (kv["broker"], int(kv["replay_batch"]))
    rows.setdefault(key, []).append(kv)
print("%-8s %6s %4s %10s %12s %9s %9s %8s" % ("broker", "batch", "runs", "msgs/s", "cpu_us/msg",
                                             "live_p50", "live_p99", "pubs"))
for (b, n), rs in sorted(rows.items()):
    med = lambda k: statistics.median(float(r.get(k, "nan")) for r in rs)
    print("%-8s %6d %4d %10.0f %12.2f %9.0f %9.0f %8.0f" % (
        b, n, len(rs), med("rate"), med("broker_cpu_us_per_msg"), med("live_p50_us"),
        med("live_p99_us"), med("publishes")))
EOF
