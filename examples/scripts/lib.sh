# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# lib.sh — what the walkthrough scripts share: where the broker is, device
# tokens, and small wrappers around mosquitto_pub / mosquitto_sub and the
# CBOR helper. Sourced, never run. Every wait is bounded.
#
# Environment (defaults fit `make run` at the top of the checkout):
#   CHAT_HOST   127.0.0.1       CHAT_PORT  1883
#   CHAT_BUILD  <repo>/build    CHAT_DATA  <repo>/data   (holds admin.token)
#   CHAT_STATE  $CHAT_DATA/examples: device tokens made by these scripts, so
#               they can run again against the same broker.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
CHAT_HOST=${CHAT_HOST:-127.0.0.1}
CHAT_PORT=${CHAT_PORT:-1883}
CHAT_BUILD=${CHAT_BUILD:-$REPO/build}
CHAT_DATA=${CHAT_DATA:-$REPO/data}
CHAT_STATE=${CHAT_STATE:-$CHAT_DATA/examples}
CBOR=$REPO/scripts/cbor
PREFIX=chat

mkdir -p "$CHAT_STATE"
chmod 700 "$CHAT_STATE"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/chat-example.XXXXXX")
LISTENERS=()
cleanup() {
  local p
  for p in "${LISTENERS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

say()  { printf '\n\033[1m# %s\033[0m\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
ok()   { echo "ok: $*"; }

chatctl() {
  "$CHAT_BUILD/bin/chatctl" -h "$CHAT_HOST" -p "$CHAT_PORT" \
    --token-file "$CHAT_DATA/admin.token" "$@"
}

# token U D: the device's token, provisioned with chatctl on first use and
# kept in $CHAT_STATE (device-token, which the README's session uses too).
token() {
  CHAT_HOST=$CHAT_HOST CHAT_PORT=$CHAT_PORT CHAT_BUILD=$CHAT_BUILD CHAT_DATA=$CHAT_DATA \
    CHAT_STATE=$CHAT_STATE "$REPO/examples/scripts/device-token" "$1" "$2" \
    || fail "no token for $1/$2"
}

# pub U D TOPIC JSON: one QoS 1 publish as device U/D, payload JSON as CBOR.
# The publish returns once the broker's PUBACK is in: for a send, "stored".
pub() {
  "$CBOR" encode "$4" | mosquitto_pub -h "$CHAT_HOST" -p "$CHAT_PORT" \
    -i "$1/$2" -u "$1/$2" -P "$(token "$1" "$2")" -t "$3" -q 1 -s
}

# listen NAME U D TOPIC [mosquitto_sub options…]: subscribes as U/D in the
# background and returns once the SUBACK is in. `events NAME` prints what it
# got so far as JSON lines; `granted NAME` the QoS the broker granted (128 =
# refused).
listen() {
  local name=$1 u=$2 d=$3 topic=$4
  shift 4
  stdbuf -oL mosquitto_sub -h "$CHAT_HOST" -p "$CHAT_PORT" -i "$u/$d" -u "$u/$d" \
    -P "$(token "$u" "$d")" -t "$topic" -q 1 -F %x -d "$@" > "$SCRATCH/$name" &
  LISTENERS+=($!)
  eval "PID_$name=$!"
  for _ in $(seq 100); do
    grep -q '^Subscribed' "$SCRATCH/$name" 2>/dev/null && return 0
    sleep 0.05
  done
  fail "$u/$d did not get a SUBACK for $topic"
}

# stop NAME: ends a listener (a clean DISCONNECT).
stop() {
  local pid
  pid=$(eval echo "\$PID_$1")
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

events()  { grep -E '^[0-9a-f]+$' "$SCRATCH/$1" | "$CBOR" decode --hex --text || true; }
granted() { sed -n 's/^Subscribed (mid: [0-9]*): //p' "$SCRATCH/$1" | head -1; }

# mark NAME: later `expect NAME …` only look at events that come after now.
mark() { eval "MARK_$1=$(events "$1" | wc -l)"; }
since() { events "$1" | tail -n +$(( $(eval echo "\${MARK_$1:-0}") + 1 )); }

# expect NAME JQ-FILTER [SECONDS]: waits until one of NAME's events (since
# its mark) makes the jq filter true, prints that event, and fails after
# SECONDS (default 5).
expect() {
  local name=$1 filter=$2 limit=${3:-5} hit
  for _ in $(seq $((limit * 20))); do
    hit=$(since "$name" | jq -c "select($filter)" | head -1)
    if [ -n "$hit" ]; then echo "  $hit"; return 0; fi
    sleep 0.05
  done
  echo "events of $name so far:" >&2
  events "$name" >&2
  fail "$name: no event with $filter within ${limit}s"
}

# latest NAME JQ-FILTER [SECONDS]: waits until NAME's newest event makes the
# filter true (for retained state such as presence).
latest() {
  local name=$1 filter=$2 limit=${3:-5} hit
  for _ in $(seq $((limit * 20))); do
    hit=$(events "$name" | tail -1 | jq -c "select($filter)")
    if [ -n "$hit" ]; then echo "  $hit"; return 0; fi
    sleep 0.05
  done
  events "$name" >&2
  fail "$name: the latest event is not $filter after ${limit}s"
}

# nothing NAME JQ-FILTER: fails if an event of NAME makes the filter true.
nothing() {
  local hit
  hit=$(events "$1" | jq -c "select($2)" | head -1)
  [ -z "$hit" ] || fail "$1: unexpected event $hit"
}

b64() { printf %s "$1" | base64 -w0 | tr '+/' '-_' | tr -d =; }
