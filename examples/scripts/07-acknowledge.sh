#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# 7. Catching up. Each device of the walkthrough connects, takes the replay
#    its subscription starts (everything still queued for it, in order, then
#    {"k":"sync","done":true}) and acknowledges every message and group event
#    in it with one `delivered` receipt per conversation — what an app does
#    after a sync. Acknowledged entries leave the queue; queued events
#    (receipts, `sent`) leave it once replayed. The next replay is empty, so
#    the walkthrough (and the README's session after it) starts clean again.
. "$(dirname "$0")/lib.sh"

DEVICES="alice/phone alice/laptop bob/phone carol/phone dave/phone"

# catch_up ROUND: every device takes its replay and acknowledges it
catch_up() {
  local dev u d name n convs conv seqs
  for dev in $DEVICES; do
    u=${dev%/*} d=${dev#*/} name=r$1_${dev/\//_}
    listen "$name" "$u" "$d" "$PREFIX/inbox/$dev"
    expect "$name" '.k == "sync" and .done == true' 10 > /dev/null
    stop "$name"
    n=$(events "$name" | jq -c 'select(.k != "sync")' | wc -l)
    convs=$(events "$name" | jq -r 'select((.k == "msg" or .k == "group") and .seq) | .conv' | sort -u)
    for conv in $convs; do
      seqs=$(events "$name" | jq -r --arg c "$conv" \
               'select((.k == "msg" or .k == "group") and .conv == $c) | .seq' | paste -sd, -)
      pub "$u" "$d" "$PREFIX/receipt" "{\"s\": \"delivered\", \"conv\": \"$conv\", \"seqs\": [$seqs]}"
    done
    echo "  $dev: $n event(s) replayed, acknowledged in $(printf '%s' "$convs" | grep -c . || true) conversation(s)"
  done
}

say "each device takes its replay and acknowledges it"
catch_up 1
say "once more: the ✓✓ those receipts sent to the senders' devices (events leave once replayed)"
catch_up 2

say "a second replay of each device: nothing but the end"
for dev in $DEVICES; do
  u=${dev%/*} d=${dev#*/} name=again_${dev/\//_}
  listen "$name" "$u" "$d" "$PREFIX/inbox/$dev"
  expect "$name" '.k == "sync" and .done == true' 10 > /dev/null
  stop "$name"
  left=$(events "$name" | jq -c 'select(.k != "sync")')
  [ -z "$left" ] || fail "$dev still has: $left"
done
echo "  every queue is empty"
ok "caught up"
