#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# 5. A group. The admin creates it with alice as owner and bob and carol as
#    members (a device could ask the same with a `group.create` request on
#    chat/ctl). Membership changes are events in the group's own order, so
#    everyone sees messages and membership consistently; a removed member
#    gets nothing after the removal.
. "$(dirname "$0")/lib.sh"

cid=$(date +%s%N | cut -c1-15)   # cids must be new for each send of a device
gid=friends-$cid
listen bob bob phone "$PREFIX/inbox/bob/phone"
listen carol carol phone "$PREFIX/inbox/carol/phone"

say "chatctl group create $gid --owner alice --members bob,carol"
chatctl group create "$gid" --owner alice --members bob,carol
expect bob ".k == \"group\" and .gid == \"$gid\" and .op == \"created\""
expect carol ".k == \"group\" and .gid == \"$gid\" and .op == \"created\""

say "alice's phone sends to chat/group/$gid; the body is stored once, fanned out to every member device"
pub alice phone "$PREFIX/group/$gid" "{\"cid\": $cid, \"body\": \"b64:$(b64 'hi all')\"}"
expect bob ".k == \"msg\" and .conv == \"g:$gid\" and .body == \"hi all\""
expect carol ".k == \"msg\" and .conv == \"g:$gid\" and .body == \"hi all\""

say "alice removes carol (a ctl request from her phone)"
pub alice phone "$PREFIX/ctl" "{\"op\": \"group.remove\", \"rid\": 1, \"gid\": \"$gid\", \"members\": [\"carol\"]}"
expect bob ".k == \"group\" and .gid == \"$gid\" and .op == \"removed\" and .members == [\"carol\"]"
expect carol ".k == \"group\" and .gid == \"$gid\" and .op == \"removed\""

say "the next message reaches bob, not carol"
pub alice phone "$PREFIX/group/$gid" "{\"cid\": $((cid + 1)), \"body\": \"b64:$(b64 'just us')\"}"
expect bob ".k == \"msg\" and .conv == \"g:$gid\" and .body == \"just us\""
sleep 0.5
nothing carol '.body == "just us"'
echo "  carol got nothing after her removal"

say "carol is no longer a member: her send is refused (MQTT 5 PUBACK 0x87)"
stop carol
"$CBOR" encode "{\"cid\": $cid, \"body\": \"b64:eA\"}" | mosquitto_pub -h "$CHAT_HOST" -p "$CHAT_PORT" -V 5 \
  -i carol/phone -u carol/phone -P "$(token carol phone)" -t "$PREFIX/group/$gid" -q 1 -s -d \
  > "$SCRATCH/refused" 2>&1 || true
grep -q 'RC:135' "$SCRATCH/refused" || { cat "$SCRATCH/refused" >&2; fail "carol's send was not refused"; }
echo "  $(grep PUBACK "$SCRATCH/refused")"
ok "group"
