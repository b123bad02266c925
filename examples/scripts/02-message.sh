#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# 2. A 1:1 message, live. bob's phone listens on its inbox; alice's phone
#    publishes a send on chat/dm/bob at QoS 1 (its PUBACK means "stored");
#    bob gets a `msg` event, and alice's other device (her laptop) gets the
#    copy with alice's cid, so all her devices show the conversation.
. "$(dirname "$0")/lib.sh"

listen bob bob phone "$PREFIX/inbox/bob/phone"
listen laptop alice laptop "$PREFIX/inbox/alice/laptop"

say "alice's phone sends \"hello bob\" (cid: a number new for each send of this device)"
cid=$(date +%s%N | cut -c1-15)
pub alice phone "$PREFIX/dm/bob" "{\"cid\": $cid, \"body\": \"b64:$(b64 'hello bob')\"}"

say "bob's phone receives it"
expect bob '.k == "msg" and .from == "alice/phone" and .body == "hello bob" and .conv == "dm:alice:bob"'
say "alice's laptop gets her own copy, with the cid"
expect laptop ".k == \"msg\" and .cid == $cid and .body == \"hello bob\""

say "a retry with the same cid is answered with the same seq, not delivered twice"
seq=$(events bob | jq -r 'select(.k == "msg" and .body == "hello bob") | .seq' | tail -1)
pub alice phone "$PREFIX/dm/bob" "{\"cid\": $cid, \"body\": \"b64:$(b64 'hello bob')\"}"
sleep 0.5
n=$(events bob | jq -c "select(.k == \"msg\" and .seq == $seq)" | wc -l)
[ "$n" -eq 1 ] || fail "bob got seq $seq $n times"
echo "  bob has seq $seq once"

say "a send to a user who does not exist is refused: MQTT 5 shows it on the PUBACK"
"$CBOR" encode "{\"cid\": $((cid + 1)), \"body\": \"b64:$(b64 x)\"}" | mosquitto_pub -h "$CHAT_HOST" \
  -p "$CHAT_PORT" -V 5 -i alice/phone -u alice/phone -P "$(token alice phone)" \
  -t "$PREFIX/dm/nobody-$cid" -q 1 -s -d > "$SCRATCH/refused" 2>&1 || true
grep -q 'PUBACK (Mid: 1, RC:135)' "$SCRATCH/refused" || { cat "$SCRATCH/refused" >&2; fail "no refusal"; }
echo "  $(grep PUBACK "$SCRATCH/refused")   (135 = 0x87 not authorized; the inbox gets an error event)"
ok "1:1 message delivered"
