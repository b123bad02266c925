#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# bench/compare.sh — stock mosquitto vs mosquitto + chat plugin, in one run.
#
# Runs the baseline (relay on a stock mosquitto without the plugin) and the
# chat modes (dm, dm with sync writes, replay, keys, fanout, idle, and the IoT
# rows: IoT clients beside chat) alternating, for
# several repetitions, each measurement on a freshly started broker with its
# own temp data dir on a free loopback port. Prints the medians and the
# ratios chat / stock. Absolute numbers on a shared machine are noise; the
# ratios measured in the same run are the result (docs/BENCHMARKS.md).
#
#   bench/compare.sh            # ~7 min: 3 reps, latency sweep, 19k idle connections, fanout
#   bench/compare.sh --quick    # ~3 min: 2 reps, smaller counts, 2000 idle connections
#   bench/compare.sh --iot-only --reps 5   # ~2 min: only the IoT rows
#   bench/compare.sh --durable-only --reps 5   # ~3 min: only the patched broker's sync-writes rows
#   bench/compare.sh --realistic-only  # ~4.5 min a rep: 5,000 devices, 1,500 msgs/s, 30 s a row
#   bench/compare.sh --dm-only --quick # ~1 min a rep: relay, dm v1/v2, patched, ejabberd
#   bench/compare.sh --realistic-only --real-secs 300 --reps 1   # the issue's 5-minute run
#   KS_NOLOG=/path/to/old/chat-keyserver bench/compare.sh --keys-only --quick --reps 3
#                                # ~1 min: only keys, with the key directory log's proofs
#                                # and (KS_NOLOG) with a key server without the log
#
# Options:
#   --reps N         repetitions (default 3; --quick 2)
#   --out DIR        keep the raw result lines and logs in DIR (default: a temp dir, removed)
#   --plots DIR      write PNG plots to DIR with gnuplot (installs gnuplot-nox via
#                    scripts/deps.sh bench if it is missing)
#   --ks-nodelay     also run keys with TCP_NODELAY forced on the key server's socket
#                    (LD_PRELOAD diagnostic shim; the key server itself is unchanged)
#   --idle-conns N   idle connections per broker (default 19000; --quick 2000)
#   --no-idle        skip the idle mode
#   --fanout-members M   group size for fanout (default 1000)
#   --no-fanout      skip the fanout mode
#   --no-patched     skip relay and dm on the broker-patches build (BUILD/mosquitto-patched/
#                    mosquitto, built with `make patched-broker` if missing), where the
#                    receivers send no receipts: their PUBACKs deliver
#   --no-peers       skip the peer brokers
#   --no-iot         skip the IoT rows: the relay between anonymous clients on a broker with
#                    the plugin (allow_anonymous true, plugin_opt_foreign_acl allow, as a broker
#                    shared with IoT traffic runs) against the same relay on stock mosquitto,
#                    and dm on that broker with and without an anonymous "#" subscriber
#   --iot-only       only the IoT rows (~20 s a rep); they also run stock mosquitto with
#                    one idle thread preloaded (BUILD/lib/idle_thread_preload.so), a diagnostic
#   --keys-only      only the keys rows (~8 s a rep with --quick); with KS_NOLOG set, each
#                    rep also runs keys with that key server binary (one built before the key
#                    directory log, e.g. from commit 76ec760), labelled log=0
#   --idle-only      only the idle rows (~25 s a rep at 19000): stock, chat, and chat with
#                    plugin_opt_presence_retained true (phase=idle-retained: presence in
#                    mosquitto's retain tree, the behaviour before it became the plugin's)
#   --fanout-only    only the fanout rows (stock and chat alternating, chat on the patched
#                    broker with members sending no receipts unless --no-patched, offline chat);
#                    --fanout-sends K sets the live sends (default 50; --quick 40)
#   --durable-only   only the durable rows (~35 s a rep): dm on the patched broker with
#                    sync_writes true (group commit) and false, alternating, at the max rate,
#                    then sync_writes true at half of its max rate (p99)
#   --caps LIST      the capabilities of the protocol v2 rows (default sents,rcpts): dm at
#                    the max rate and at half of it (phase=v2max, v2half), and on the patched
#                    broker (phase=patched-v2), each device declaring LIST (chatbench --caps)
#   --no-v2          skip the v2 rows (a plugin without the caps op refuses them)
#   --realistic      also the realistic shape (phase=real): many devices each sending rarely,
#                    open loop at a fixed total rate — stock mosquitto's relay, dm v1 and dm
#                    v2 (stock and patched broker), and ejabberd where installed; broker
#                    CPU per message and p50/p99/p99.9
#   --realistic-only only those rows
#   --dm-only        only relay and dm (max, half, v2, patched) and the peers (~1 min a rep
#                    with --quick): the issue-28 throughput, latency and ejabberd ratios
#   --real-pairs N   pairs in the realistic shape (default 2500: 5,000 connected devices)
#   --real-rate R    msgs/s in all in the realistic shape (default 1500: 0.6 per sender per s)
#   --real-secs S    seconds a realistic row sends (default 30; --quick 15; the issue's: 300)
# Peers, where installed: the same relay (phase=peer) on aedes (Node.js; `npm install aedes`
# in bench/peers, `npm install -g aedes`, or AEDES_BASE=DIR with DIR/node_modules/aedes) and
# on RabbitMQ's MQTT plugin (Debian's rabbitmq-server, a private node per run), reported as
# ratios to stock mosquitto; and a chat server doing the dm's 1:1 flow: ejabberd (Debian's
# ejabberd; `scripts/deps.sh bench` installs it), a private node per run (own config, port
# and spool in the run's temp dir, no epmd), mod_offline on, XEP-0184 receipts, XEP-0198
# acks for QoS 1 (chatbench xmpp, phase=peer peer=ejabberd), reported as a ratio to dm.
# Only ejabberd is installed by scripts/deps.sh (the bench extra); the peers are skipped,
# and said so, where they are not installed.
# Environment: BUILD (default <repo>/build), MOSQUITTO (default /usr/sbin/mosquitto),
# AEDES_BASE, RABBITMQ_SERVER (default /usr/lib/rabbitmq/bin/rabbitmq-server), KS_NOLOG,
# EJABBERD_LIBS (default: the directory holding Debian's ejabberd-*/ebin, /usr/lib/<arch>).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$repo/build}
case $build in /*) ;; *) build=$repo/$build ;; esac
mosq=${MOSQUITTO:-/usr/sbin/mosquitto}
bench=$build/bin/chatbench
plugin=$build/lib/mosquitto_chat.so
ks=$build/bin/chat-keyserver
ctl=$build/bin/chatctl
shim=$build/lib/nodelay_preload.so
thread_shim=$build/lib/idle_thread_preload.so

cmdline="$0 $*"
quick=0 reps="" out="" plots="" ks_nodelay=0 idle_conns="" idle=1 fanout=1 fan_members=1000 patched=1
peers=1 iot=1 iot_only=0 durable_only=0 keys_only=0
v2=1 v2_caps=sents,rcpts dm_only=0 realistic=0 realistic_only=0 real_pairs=2500 real_rate=1500 real_secs=""
idle_only=0 fanout_only=0 fan_sends_opt=""
while [ $# -gt 0 ]; do
  case $1 in
    --quick) quick=1 ;;
    --reps) reps=$2; shift ;;
    --out) out=$2; shift ;;
    --plots) plots=$2; shift ;;
    --ks-nodelay) ks_nodelay=1 ;;
    --idle-conns) idle_conns=$2; shift ;;
    --no-idle) idle=0 ;;
    --fanout-members) fan_members=$2; shift ;;
    --no-fanout) fanout=0 ;;
    --no-patched) patched=0 ;;
    --no-peers) peers=0 ;;
    --no-iot) iot=0 ;;
    --iot-only) iot_only=1 ;;
    --durable-only) durable_only=1 ;;
    --keys-only) keys_only=1 ;;
    --caps) v2_caps=$2; shift ;;
    --no-v2) v2=0 ;;
    --realistic) realistic=1 ;;
    --realistic-only) realistic=1; realistic_only=1 ;;
    --dm-only) dm_only=1 ;;
    --real-pairs) real_pairs=$2; shift ;;
    --real-rate) real_rate=$2; shift ;;
    --real-secs) real_secs=$2; shift ;;
    --idle-only) idle_only=1 ;;
    --fanout-only) fanout_only=1 ;;
    --fanout-sends) fan_sends_opt=$2; shift ;;
    -h|--help) sed -n '2,83p' "$0"; exit 0 ;;
    *) echo "compare: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

for f in "$bench" "$plugin" "$ctl" "$mosq"; do
  [ -x "$f" ] || [ -f "$f" ] || { echo "compare: $f missing; run 'make build' first" >&2; exit 1; }
done

if [ $quick -eq 1 ]; then
  reps=${reps:-2}; relay_msgs=40000; dm_msgs=12000; sync_msgs=300; lat_secs=1.5
  replay_msgs=10000; windows="500"; keys_msgs=6000; idle_conns=${idle_conns:-2000}; sweep=""
  fan_sends=40; fan_off_sends=100; real_secs=${real_secs:-15}
else
  reps=${reps:-3}; relay_msgs=120000; dm_msgs=30000; sync_msgs=1200; lat_secs=3
  replay_msgs=30000; windows="100 500 2000"; keys_msgs=20000; idle_conns=${idle_conns:-19000}
  sweep="0.1 0.25 0.5 0.75 0.9"
  fan_sends=50; fan_off_sends=200   # 50 sends: the sender then waits ~50 s for its 50,000 receipt events (flow drain 1000/s)
  real_secs=${real_secs:-30}
fi

fan_sends=${fan_sends_opt:-$fan_sends}

pmosq=$build/mosquitto-patched/mosquitto
if [ $patched -eq 1 ] && [ ! -x "$pmosq" ]; then
  echo "compare: building the broker-patches mosquitto (make patched-broker)" >&2
  make -C "$repo" --no-print-directory BUILD="$build" patched-broker >&2 || true
  if [ ! -x "$pmosq" ]; then
    echo "compare: no $pmosq; the patched phase is skipped" >&2
    patched=0
  fi
fi

tmp=$(mktemp -d /tmp/chat-compare.XXXXXX)
keep_tmp=0
if [ -n "$out" ]; then mkdir -p "$out"; out=$(cd "$out" && pwd); else out=$tmp; fi
results=$out/results.txt
: > "$results"

pids=()
cleanup() {
  local p
  for p in "${pids[@]:-}"; do
    [ -n "$p" ] && kill "$p" 2>/dev/null && wait "$p" 2>/dev/null
  done
  # a RabbitMQ peer's private epmd, if the script ended while one ran
  if [ -n "${PEER_EPMD:-}" ]; then ERL_EPMD_PORT=$PEER_EPMD epmd -kill > /dev/null 2>&1 || true; fi
  [ $keep_tmp -eq 1 ] || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

forget_pid() {
  local p keep=()
  for p in "${pids[@]:-}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  pids=("${keep[@]:-}")
}

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() {
  /usr/bin/python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' "$1" 2>/dev/null
}

# start_broker NAME stock|chat [plugin_opt lines…]; sets BPID BPORT BDIR.
# Both kinds get the same broker settings: set_tcp_nodelay true (the
# default, false, adds Nagle delays to every small packet), logs limited
# to errors and warnings, the fd limit raised to the hard limit, and
# max_queued_messages $MAXQ (default 1000, mosquitto's own default).
# ANON=1 lets anonymous clients onto a chat broker too (allow_anonymous
# true; pass foreign_acl allow for them to reach their topics).
# BROKER_PRELOAD: an LD_PRELOAD for the broker (a diagnostic shim).
start_broker() {
  local name=$1 kind=$2; shift 2
  BDIR=$tmp/$name
  rm -rf "$BDIR"
  mkdir -p "$BDIR/data"
  BPORT=$(free_port)
  {
    echo "listener $BPORT 127.0.0.1"
    echo "set_tcp_nodelay true"
    echo "max_queued_messages ${MAXQ:-1000}"
    if [ "$kind" = stock ]; then
      echo "allow_anonymous true"
    else
      if [ "${ANON:-0}" = 1 ]; then echo "allow_anonymous true"; fi
      echo "plugin $plugin"
      echo "plugin_opt_data_dir $BDIR/data"
      echo "plugin_opt_send_rate 0"   # capacity is measured, not the per-device limit
      local l
      for l in "$@"; do echo "plugin_opt_$l"; done
    fi
    echo "log_dest file $BDIR/mosquitto.log"
    echo "log_type error"
    echo "log_type warning"
    if [ "$(id -u)" -eq 0 ]; then echo "user root"; fi
  } > "$BDIR/mosquitto.conf"
  ( ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
    if [ -n "${BROKER_PRELOAD:-}" ]; then export LD_PRELOAD=$BROKER_PRELOAD; fi
    exec "${BROKER_BIN:-$mosq}" -c "$BDIR/mosquitto.conf" ) \
    > "$BDIR/stderr" 2>&1 &
  BPID=$!
  pids+=("$BPID")
  local i
  for i in $(seq 200); do
    if port_open "$BPORT" && { [ "$kind" = stock ] || [ -s "$BDIR/data/admin.token" ]; }; then
      return 0
    fi
    kill -0 "$BPID" 2>/dev/null || break
    sleep 0.05
  done
  echo "compare: broker $name did not start:" >&2
  tail -20 "$BDIR/stderr" "$BDIR/mosquitto.log" >&2 || true
  exit 1
}

stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  forget_pid "$1"
}

# The peers found on this machine (--no-peers: none).
aedes_bases=(${AEDES_BASE:+"$AEDES_BASE"} "$repo/bench/peers")
if command -v npm > /dev/null 2>&1; then aedes_bases+=("$(dirname "$(npm root -g 2>/dev/null)")"); fi
peer_list=()
if [ $peers -eq 1 ] && command -v node > /dev/null 2>&1 &&
   node "$repo/bench/peers/aedes.mjs" --check "${aedes_bases[@]}" 2>/dev/null; then
  peer_list+=(aedes)
fi
# RabbitMQ: the script itself, not Debian's /usr/sbin wrapper (which changes user); the
# Erlang VM it starts writes its pid file, and that process is what chatbench measures.
rabbit=${RABBITMQ_SERVER:-/usr/lib/rabbitmq/bin/rabbitmq-server}
if [ $peers -eq 1 ] && [ -x "$rabbit" ] &&
   ls -d "$(dirname "$rabbit")"/../lib/rabbitmq_server-*/plugins/rabbitmq_mqtt-* > /dev/null 2>&1; then
  peer_list+=(rabbitmq)
fi
ejabberd=0
if [ $peers -eq 1 ] && "$repo/bench/peers/ejabberd.sh" --check; then ejabberd=1; fi
PEER_EPMD="" PEER_SHELL=""

# start_peer NAME; sets BPID BPORT BDIR like start_broker.
start_peer() {
  BDIR=$tmp/peer-$1
  rm -rf "$BDIR"
  mkdir -p "$BDIR"
  BPORT=$(free_port)
  local tries=200
  case $1 in
    aedes) node "$repo/bench/peers/aedes.mjs" "$BPORT" "${aedes_bases[@]}" > "$BDIR/stderr" 2>&1 & ;;
    rabbitmq)
      # A private node: its own epmd port, Erlang distribution and AMQP on
      # loopback, data and logs in BDIR, only the MQTT plugin, anonymous
      # MQTT clients as its default user.
      PEER_EPMD=$(free_port)
      local dist amqp
      dist=$(free_port) amqp=$(free_port)
      printf '%s\n' "listeners.tcp.default = 127.0.0.1:$amqp" \
        "mqtt.listeners.tcp.default = 127.0.0.1:$BPORT" "mqtt.allow_anonymous = true" \
        "mqtt.tcp_listen_options.nodelay = true" "loopback_users = none" > "$BDIR/rabbitmq.conf"
      echo '[rabbitmq_mqtt].' > "$BDIR/enabled_plugins"
      ( export HOME=$BDIR ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$PEER_EPMD \
          RABBITMQ_NODENAME=chatbench@localhost RABBITMQ_DIST_PORT=$dist \
          RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}" \
          RABBITMQ_CONFIG_FILE=$BDIR/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$BDIR/enabled_plugins \
          RABBITMQ_MNESIA_BASE=$BDIR/mnesia RABBITMQ_LOG_BASE=$BDIR/log RABBITMQ_PID_FILE=$BDIR/pid
        exec "$rabbit" < /dev/null ) > "$BDIR/stderr" 2>&1 &
      tries=1200 ;;   # a minute: an Erlang node takes several seconds to boot
    ejabberd)
      # a private node (bench/peers/ejabberd.sh says how it is set up); the
      # script execs the Erlang VM: $! is what chatbench measures
      "$repo/bench/peers/ejabberd.sh" "$BPORT" "$BDIR" > "$BDIR/stderr" 2>&1 &
      tries=1200 ;;
    *) echo "compare: unknown peer $1" >&2; exit 1 ;;
  esac
  BPID=$!
  pids+=("$BPID")
  local i
  PEER_SHELL=""
  for i in $(seq $tries); do
    if port_open "$BPORT"; then
      if [ "$1" = rabbitmq ] && [ -s "$BDIR/pid" ]; then
        # the script stays the parent: chatbench measures the VM it started
        PEER_SHELL=$BPID
        BPID=$(cat "$BDIR/pid")
        pids+=("$BPID")
      fi
      return 0
    fi
    kill -0 "$BPID" 2>/dev/null || break
    sleep 0.05
  done
  echo "compare: peer $1 did not start:" >&2
  tail -20 "$BDIR/stderr" >&2 || true
  exit 1
}

# stop_peer: the peer from start_peer, and a RabbitMQ node's private epmd.
stop_peer() {
  if [ -z "$PEER_SHELL" ]; then   # our child (an Erlang VM stops in order on SIGTERM): 10 s, then SIGKILL
    local j
    kill "$BPID" 2>/dev/null || true
    for j in $(seq 100); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BPID" 2>/dev/null || true
  fi
  stop_pid "$BPID"
  if [ -n "$PEER_SHELL" ]; then
    local i   # not our child, so no wait: 10 s for the VM's orderly stop, then SIGKILL
    for i in $(seq 100); do kill -0 "$BPID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BPID" 2>/dev/null || true
    stop_pid "$PEER_SHELL"
    PEER_SHELL=""
  fi
  if [ -n "$PEER_EPMD" ]; then
    ERL_EPMD_PORT=$PEER_EPMD epmd -kill > /dev/null 2>&1 || true
    PEER_EPMD=""
  fi
}

# start_keyserver [preload [binary]]; the broker from start_broker must be a chat one. Sets KPID.
start_keyserver() {
  local ks=${2:-$ks}
  [ -x "$ks" ] || { echo "compare: $ks missing" >&2; exit 1; }
  (umask 077; "$ctl" -h 127.0.0.1 -p "$BPORT" --token-file "$BDIR/data/admin.token" \
     service add keys > "$BDIR/keys.token")
  # --rate-refill-seconds 0 disables the per-(device, user) bundle limit:
  # with Signal's defaults (6, then one per 10 min) a bench fetcher would be
  # refused after 6 bundles per target user.
  ( if [ -n "${1:-}" ]; then export LD_PRELOAD=$1; fi
    exec "$ks" -h 127.0.0.1 -p "$BPORT" -u keys --token-file "$BDIR/keys.token" \
      --data-dir "$BDIR/keys" --rate-burst 1000000 --rate-refill-seconds 0 --log-level warning ) \
    > "$BDIR/keyserver.log" 2>&1 &
  KPID=$!
  pids+=("$KPID")
  sleep 0.3   # the key server subscribes right after connecting
}

# run_bench LABEL ARGS… : runs chatbench, appends its result line (with LABEL) to results.txt,
# echoes the line.
run_bench() {
  local label=$1; shift
  local line rc=0 t0
  t0=$(date +%s.%N)
  line=$("$bench" "$@" --timeout "${BENCH_TIMEOUT:-90}" --label "$label" 2> "$tmp/bench.err") || rc=$?
  if [ -z "$line" ]; then
    line="mode=error $label ok=0"
    echo "compare: chatbench $* failed (rc=$rc): $(tail -3 "$tmp/bench.err")" >&2
  fi
  # the whole run's wall time, set-up and waits included: where the script's minutes go
  line="$line wall_secs=$(/usr/bin/python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$t0" "$(date +%s.%N)")"
  echo "$line" >> "$results"
  printf '  %s\n' "$(echo "$line" | tr ' ' '\n' | grep -E '^(mode|kind|rate|p50_us|p99_us|p999_us|broker_cpu_us_per_msg|rss_per_conn_bytes|ok|sender_ok|window|offered|sync|rep)=' | tr '\n' ' ')" >&2
  LAST=$line
}

field() { # field NAME LINE
  echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p" | head -1
}

echo "compare: $(nproc) cpus, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), kernel $(uname -r)" >&2
peers_said="${peer_list[*]:-no MQTT peer found (see --help)}"
if [ $ejabberd -eq 1 ]; then peers_said="$peers_said; ejabberd"; else peers_said="$peers_said; ejabberd skipped (not installed: scripts/deps.sh bench)"; fi
[ $peers -eq 1 ] || peers_said="off (--no-peers)"
echo "compare: $reps reps; results in $results; peers: $peers_said" >&2
{
  echo "# command $cmdline"
  echo "# machine nproc=$(nproc) cpu=\"$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')\" kernel=$(uname -r) date=$(date -u +%FT%TZ) quick=$quick"
} >> "$results"
start_all=$(date +%s)

# The IoT rows (issue 24): what the plugin costs clients that are not chat
# accounts (the relay on a broker configured for a shared IoT deployment,
# against stock), and what an IoT "#" subscriber costs chat (dm on that
# broker with and without one; the subscriber gets nothing of chat/, so it
# costs only mosquitto's READ check per routed chat publish). side=thread is
# stock mosquitto with one idle thread preloaded: the plugin makes the broker
# multi-threaded (RocksDB); this row tells whether that alone costs the relay.
iot_rows() {
  local rep=$1 side spy sides=$order
  if [ -f "$thread_shim" ]; then sides=${order/stock/stock thread}; fi
  for side in $sides; do
    if [ $side = stock ]; then
      start_broker iot-relay stock
    elif [ $side = thread ]; then
      BROKER_PRELOAD=$thread_shim start_broker iot-relay stock
    else
      ANON=1 start_broker iot-relay chat "foreign_acl allow"
    fi
    run_bench "phase=iot side=$side rep=$rep" relay -p "$BPORT" --broker-pid "$BPID" --msgs $relay_msgs
    stop_pid "$BPID"
  done
  for spy in $( [ $((rep % 2)) -eq 1 ] && echo "0 1" || echo "1 0" ); do
    ANON=1 start_broker iot-dm chat "foreign_acl allow"
    if [ $spy = 1 ]; then
      run_bench "phase=iot-dm spy=1 rep=$rep sync=false" dm -p "$BPORT" --broker-pid "$BPID" \
        --admin-token-file "$BDIR/data/admin.token" --msgs $dm_msgs --iot-sub '#'
    else
      run_bench "phase=iot-dm spy=0 rep=$rep sync=false" dm -p "$BPORT" --broker-pid "$BPID" \
        --admin-token-file "$BDIR/data/admin.token" --msgs $dm_msgs
    fi
    stop_pid "$BPID"
  done
}

# The durable rows (issue 26): dm with sync_writes true on the patched
# broker, where the plugin's group commit holds each PUBACK for a shared
# fsync (plugin/commit.c), against dm with sync_writes false on the same
# broker, alternating which goes first; then sync_writes true at half of
# its own max rate, for the latency. Receivers send no receipts, as on the
# patched dm row (their PUBACKs deliver).
durable_rows() {
  local rep=$1 s sync_max r n
  for s in $( [ $((rep % 2)) -eq 1 ] && echo "true false" || echo "false true" ); do
    BROKER_BIN=$pmosq start_broker dm-durable chat "sync_writes $s"
    run_bench "phase=durable rep=$rep sync=$s" dm -p "$BPORT" --broker-pid "$BPID" \
      --admin-token-file "$BDIR/data/admin.token" --msgs $dm_msgs --no-receipts
    [ $s = true ] && sync_max=$(field rate "$LAST")
    stop_pid "$BPID"
  done
  r=$(( ${sync_max:-1000} / 2 )); [ $r -ge 100 ] || r=100
  n=$(/usr/bin/python3 -c "print(max(500, int($r * $lat_secs)))")
  BROKER_BIN=$pmosq start_broker dm-durable chat "sync_writes true"
  run_bench "phase=durable-half rep=$rep sync=true" dm -p "$BPORT" --broker-pid "$BPID" \
    --admin-token-file "$BDIR/data/admin.token" --rate $r --msgs $n --no-receipts
  stop_pid "$BPID"
}

# The protocol v2 rows (issue 28): dm with every device declaring $v2_caps
# (chatbench --caps: chat/ctl caps before it subscribes) at the max rate
# (closed loop, as phase=max) and at half of it, and on the patched broker,
# where the ctl reply's server.puback_delivered tells the devices to send no
# delivered receipts at all.
v2_rows() {
  local rep=$1 r n v2_max
  start_broker dm-v2 chat
  run_bench "phase=v2max rep=$rep sync=false" dm -p "$BPORT" --broker-pid "$BPID" \
    --admin-token-file "$BDIR/data/admin.token" --msgs $dm_msgs --caps "$v2_caps"
  v2_max=$(field rate "$LAST")
  stop_pid "$BPID"
  r=$(( ${v2_max:-1000} / 2 )); [ $r -ge 100 ] || r=100
  n=$(/usr/bin/python3 -c "print(max(500, int($r * $lat_secs)))")
  start_broker dm-v2 chat
  run_bench "phase=v2half rep=$rep sync=false" dm -p "$BPORT" --broker-pid "$BPID" \
    --admin-token-file "$BDIR/data/admin.token" --rate $r --msgs $n --caps "$v2_caps"
  stop_pid "$BPID"
  if [ $patched -eq 1 ]; then
    BROKER_BIN=$pmosq start_broker dm-patched-v2 chat
    run_bench "phase=patched-v2 rep=$rep sync=false" dm -p "$BPORT" --broker-pid "$BPID" \
      --admin-token-file "$BDIR/data/admin.token" --msgs $dm_msgs --caps "$v2_caps"
    stop_pid "$BPID"
  fi
}

# The realistic shape (issue 28): $real_pairs pairs (2 x that many connected
# devices), $real_rate msgs/s in all, open loop, round robin over the pairs
# (each sender sends every pairs/rate seconds), for $real_secs s: stock
# mosquitto relaying the same shape, dm with v1 forms (receivers acknowledge
# after --ack-delay-us, 20 ms: at this rate that is one receipt per message),
# dm with the v2 capabilities, the same two on the patched broker (v1: no app
# receipts, the PUBACK delivers), and ejabberd doing the same 1:1 flow.
# Which side goes first rotates with the rep.
realistic_rows() {
  local rep=$1 side n sides="stock v1 v2" k
  n=$(( real_rate * real_secs ))
  if [ $patched -eq 1 ]; then sides="$sides pv1 pv2"; fi
  if [ $ejabberd -eq 1 ]; then sides="$sides ejabberd"; fi
  set -- $sides
  for k in $(seq $(( (rep - 1) % $# ))); do set -- "${@:2}" "$1"; done
  for side in "$@"; do
    case $side in
      stock)
        start_broker real stock
        BENCH_TIMEOUT=$(( real_secs * 2 + 60 )) run_bench "phase=real side=stock rep=$rep" relay \
          -p "$BPORT" --broker-pid "$BPID" --pairs $real_pairs --rate $real_rate --msgs $n --warmup ;;
      v1|v2|pv1|pv2)
        local extra=() bin=$mosq kind=chat
        case $side in v2|pv2) extra=(--caps "$v2_caps") ;; esac
        case $side in pv1) extra=(--no-receipts) ;; esac
        case $side in pv*) bin=$pmosq kind=patched ;; esac
        BROKER_BIN=$bin start_broker real chat
        BENCH_TIMEOUT=$(( real_secs * 2 + 60 )) run_bench "phase=real side=$kind rep=$rep sync=false" dm \
          -p "$BPORT" --broker-pid "$BPID" --admin-token-file "$BDIR/data/admin.token" \
          --pairs $real_pairs --rate $real_rate --msgs $n --warmup "${extra[@]}" ;;
      ejabberd)
        start_peer ejabberd
        BENCH_TIMEOUT=$(( real_secs * 2 + 60 )) run_bench "phase=real side=ejabberd rep=$rep" xmpp \
          -p "$BPORT" --broker-pid "$BPID" --xmpp-register --pairs $real_pairs --rate $real_rate --msgs $n --warmup
        stop_peer
        continue ;;
    esac
    stop_pid "$BPID"
  done
}

# fanout_rows REP: the fanout phase (live stock and chat in $order, then offline chat).
fanout_rows() {
  local rep=$1 side
  for side in $order; do
    if [ $side = stock ]; then
      MAXQ=10000 start_broker fanout stock
      run_bench "phase=fanout rep=$rep" fanout --stock -p "$BPORT" --broker-pid "$BPID" \
        --members "$fan_members" --msgs $fan_sends
    else
      MAXQ=10000 start_broker fanout chat
      run_bench "phase=fanout rep=$rep" fanout -p "$BPORT" --broker-pid "$BPID" \
        --admin-token-file "$BDIR/data/admin.token" --members "$fan_members" --msgs $fan_sends
    fi
    stop_pid "$BPID"
  done
  # the patched broker: members send no receipts, their PUBACKs deliver
  if [ $patched -eq 1 ]; then
    MAXQ=10000 BROKER_BIN=$pmosq start_broker fanout-patched chat
    run_bench "phase=fanout-patched rep=$rep" fanout -p "$BPORT" --broker-pid "$BPID" \
      --admin-token-file "$BDIR/data/admin.token" --members "$fan_members" --msgs $fan_sends \
      --no-receipts
    stop_pid "$BPID"
  fi
  MAXQ=10000 start_broker fanout chat
  run_bench "phase=fanout rep=$rep" fanout --offline -p "$BPORT" --broker-pid "$BPID" \
    --admin-token-file "$BDIR/data/admin.token" --members "$fan_members" --msgs $fan_off_sends
  stop_pid "$BPID"
}

# idle_rows REP RETAINED: RSS per idle connection, stock and chat (alternating
# with $order); RETAINED=1 adds chat with plugin_opt_presence_retained true.
idle_rows() {
  local side sides=$order
  [ "$2" = 1 ] && sides="$order retained"
  for side in $sides; do
    if [ $side = stock ]; then
      start_broker idle stock
      run_bench "phase=idle rep=$1" idle --stock -p "$BPORT" --broker-pid "$BPID" --conns "$idle_conns"
    elif [ $side = chat ]; then
      start_broker idle chat
      run_bench "phase=idle rep=$1" idle -p "$BPORT" --broker-pid "$BPID" \
        --admin-token-file "$BDIR/data/admin.token" --conns "$idle_conns"
    else
      start_broker idle chat "presence_retained true"
      run_bench "phase=idle-retained rep=$1" idle -p "$BPORT" --broker-pid "$BPID" \
        --admin-token-file "$BDIR/data/admin.token" --conns "$idle_conns"
    fi
    stop_pid "$BPID"
  done
}

for rep in $(seq "$reps"); do
  echo "compare: rep $rep/$reps" >&2
  # Alternate which side goes first in each rep.
  if [ $((rep % 2)) -eq 1 ]; then order="stock chat"; else order="chat stock"; fi
  if [ $realistic_only -eq 1 ]; then
    realistic_rows "$rep"
    continue
  fi
  if [ $iot_only -eq 1 ]; then
    iot_rows "$rep"
    continue
  fi
  if [ $durable_only -eq 1 ]; then
    durable_rows "$rep"
    continue
  fi
  if [ $idle_only -eq 1 ]; then
    idle_rows "$rep" 1
    continue
  fi
  if [ $fanout_only -eq 1 ]; then
    fanout_rows "$rep"
    continue
  fi
  if [ $keys_only -eq 1 ]; then
    # with the log's proofs (this build) and without (KS_NOLOG), alternating
    kinds="1 0"; [ $((rep % 2)) -eq 1 ] || kinds="0 1"
    for lg in $kinds; do
      if [ $lg = 0 ] && [ -z "${KS_NOLOG:-}" ]; then continue; fi
      start_broker keys chat
      if [ $lg = 1 ]; then start_keyserver; else start_keyserver "" "$KS_NOLOG"; fi
      run_bench "phase=keys rep=$rep nodelay=0 log=$lg" keys -p "$BPORT" --broker-pid "$BPID" \
        --ks-pid "$KPID" --admin-token-file "$BDIR/data/admin.token" --msgs $keys_msgs
      stop_pid "$KPID"; stop_pid "$BPID"
    done
    continue
  fi

  # ---- throughput (max rate, closed loop) and latency at half of it
  for side in $order; do
    if [ $side = stock ]; then
      start_broker relay stock
      run_bench "phase=max rep=$rep" relay -p "$BPORT" --broker-pid "$BPID" --msgs $relay_msgs
      relay_max=$(field rate "$LAST")
      stop_pid "$BPID"
      for peer in "${peer_list[@]}"; do
        start_peer "$peer"
        run_bench "phase=peer peer=$peer rep=$rep" relay -p "$BPORT" --broker-pid "$BPID" \
          --msgs $relay_msgs
        stop_peer
      done
      # the chat server: the dm's shape (pairs, window, body, count) over XMPP
      if [ $ejabberd -eq 1 ]; then
        start_peer ejabberd
        run_bench "phase=peer peer=ejabberd rep=$rep" xmpp -p "$BPORT" --broker-pid "$BPID" \
          --xmpp-register --msgs $dm_msgs
        stop_peer
      fi
    else
      start_broker dm chat
      run_bench "phase=max rep=$rep sync=false" dm -p "$BPORT" --broker-pid "$BPID" \
        --admin-token-file "$BDIR/data/admin.token" --msgs $dm_msgs
      dm_max=$(field rate "$LAST")
      stop_pid "$BPID"
      # The same without the flow-control estimate: each of the 8 senders here
      # sends ~2000 msgs/s, above the 1000 events/s a device is assumed to
      # take (plugin_opt_inflight_drain), so most of its `sent` events take
      # the store-queue detour. This run shows the per-message cost without it.
      start_broker dm-nodrain chat "inflight_drain 100000"
      run_bench "phase=nodrain rep=$rep sync=false" dm -p "$BPORT" --broker-pid "$BPID" \
        --admin-token-file "$BDIR/data/admin.token" --msgs $dm_msgs
      stop_pid "$BPID"
    fi
  done
  for side in $order; do
    if [ $side = stock ]; then
      r=$(( ${relay_max:-1000} / 2 )); [ $r -ge 100 ] || r=100
      n=$(/usr/bin/python3 -c "print(max(500, int($r * $lat_secs)))")
      start_broker relay stock
      run_bench "phase=half rep=$rep" relay -p "$BPORT" --broker-pid "$BPID" --rate $r --msgs $n
      stop_pid "$BPID"
    else
      r=$(( ${dm_max:-1000} / 2 )); [ $r -ge 100 ] || r=100
      n=$(/usr/bin/python3 -c "print(max(500, int($r * $lat_secs)))")
      start_broker dm chat
      run_bench "phase=half rep=$rep sync=false" dm -p "$BPORT" --broker-pid "$BPID" \
        --admin-token-file "$BDIR/data/admin.token" --rate $r --msgs $n
      stop_pid "$BPID"
    fi
  done

  # ---- protocol v2: the capabilities on
  if [ $v2 -eq 1 ]; then
    v2_rows "$rep"
  fi

  # ---- the broker-patches build: its own relay baseline, and dm whose
  # receivers send no receipts (the plugin takes their PUBACKs as delivered)
  if [ $patched -eq 1 ]; then
    for side in $order; do
      if [ $side = stock ]; then
        BROKER_BIN=$pmosq start_broker relay-patched stock
        run_bench "phase=patched rep=$rep" relay -p "$BPORT" --broker-pid "$BPID" --msgs $relay_msgs
      else
        BROKER_BIN=$pmosq start_broker dm-patched chat
        run_bench "phase=patched rep=$rep sync=false" dm -p "$BPORT" --broker-pid "$BPID" \
          --admin-token-file "$BDIR/data/admin.token" --msgs $dm_msgs --no-receipts
      fi
      stop_pid "$BPID"
    done
  fi

  if [ $dm_only -eq 1 ]; then continue; fi

  # ---- dm with fsync per batch
  start_broker dmsync chat sync_writes\ true
  run_bench "phase=max rep=$rep sync=true" dm -p "$BPORT" --broker-pid "$BPID" \
    --admin-token-file "$BDIR/data/admin.token" --msgs $sync_msgs
  stop_pid "$BPID"
  # ---- the same on the patched broker: group commit
  if [ $patched -eq 1 ] && [ -x "$pmosq" ]; then
    durable_rows "$rep"
  fi

  # ---- replay, per window (a window above 1000 needs max_queued_messages above it).
  # inflight_drain 100000: the fill's one sender gets a `sent` event per
  # message, which on stock mosquitto leaves its window by the drain
  # estimate (1000/s by default), so queueing 30,000 took 30 s a run (271 s
  # of this script) though the store took them in 1.5 s. The drain measured
  # is the other device's, whose window its receipts free: unchanged (A/B in
  # docs/BENCHMARKS.md). chatbench still waits for every `sent` event.
  for w in $windows; do
    maxq=1000; [ "$w" -lt 1000 ] || maxq=$(( w * 2 ))
    MAXQ=$maxq start_broker replay chat "replay_window $w" "inflight_drain 100000"
    run_bench "phase=replay rep=$rep replay_window=$w max_queued=$maxq" replay -p "$BPORT" \
      --broker-pid "$BPID" --admin-token-file "$BDIR/data/admin.token" --msgs $replay_msgs --ack-batch 100
    stop_pid "$BPID"
  done

  # ---- keys
  if [ -x "$ks" ]; then
    start_broker keys chat
    start_keyserver
    run_bench "phase=keys rep=$rep nodelay=0" keys -p "$BPORT" --broker-pid "$BPID" --ks-pid "$KPID" \
      --admin-token-file "$BDIR/data/admin.token" --msgs $keys_msgs
    stop_pid "$KPID"; stop_pid "$BPID"
    if [ $ks_nodelay -eq 1 ] && [ -f "$shim" ]; then
      start_broker keys chat
      start_keyserver "$shim"
      run_bench "phase=keys rep=$rep nodelay=1" keys -p "$BPORT" --broker-pid "$BPID" --ks-pid "$KPID" \
        --admin-token-file "$BDIR/data/admin.token" --msgs $keys_msgs
      stop_pid "$KPID"; stop_pid "$BPID"
    fi
  fi

  # ---- fanout: one sender, a group of $fan_members members; stock = the same
  # shape on a broker without the plugin (one topic, M QoS 1 subscribers).
  # max_queued_messages 10000 for both, as README recommends for chat: the
  # sender gets a receipt per member and message, and on stock mosquitto the
  # plugin's flow window only estimates how fast a client takes them.
  if [ $fanout -eq 1 ]; then
    fanout_rows "$rep"
  fi

  # ---- idle connections, RSS per connection
  if [ $idle -eq 1 ]; then
    idle_rows "$rep" 0
  fi

  # ---- IoT clients beside chat
  if [ $iot -eq 1 ]; then
    iot_rows "$rep"
  fi

  # ---- the realistic shape
  if [ $realistic -eq 1 ]; then
    realistic_rows "$rep"
  fi

  # ---- latency vs offered load (last rep only; alternating per load)
  if [ -n "$sweep" ] && [ "$rep" -eq "$reps" ]; then
    for f in $sweep; do
      for side in $order; do
        if [ $side = stock ]; then
          r=$(/usr/bin/python3 -c "print(max(100, int(${relay_max:-1000} * $f)))")
          n=$(/usr/bin/python3 -c "print(max(500, int($r * $lat_secs * 0.7)))")
          start_broker relay stock
          run_bench "phase=sweep rep=$rep load=$f" relay -p "$BPORT" --broker-pid "$BPID" --rate $r --msgs $n
        else
          r=$(/usr/bin/python3 -c "print(max(100, int(${dm_max:-1000} * $f)))")
          n=$(/usr/bin/python3 -c "print(max(500, int($r * $lat_secs * 0.7)))")
          start_broker dm chat
          run_bench "phase=sweep rep=$rep load=$f sync=false" dm -p "$BPORT" --broker-pid "$BPID" \
            --admin-token-file "$BDIR/data/admin.token" --rate $r --msgs $n
        fi
        stop_pid "$BPID"
      done
    done
  fi
done

echo "compare: finished in $(( $(date +%s) - start_all )) s" >&2
echo
sumargs=("$results")
if [ -n "$plots" ]; then
  command -v gnuplot >/dev/null || "$repo/scripts/deps.sh" bench
  mkdir -p "$plots"
  sumargs+=(--plots "$(cd "$plots" && pwd)")
fi
/usr/bin/python3 "$repo/bench/summarize.py" "${sumargs[@]}"
if [ "$out" = "$tmp" ]; then :; else echo "raw results: $results"; fi
