#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# 4. Delivered and read receipts (✓✓ and "read"). alice's laptop sends to bob
#    while bob is offline; the message waits in bob's queue. bob's phone
#    acknowledges it on chat/receipt — `delivered` also removes it from his
#    queue — and then marks it `read`. Every device of alice sees `receipt`
#    events "by" bob; states only move forward, repeats are ignored.
. "$(dirname "$0")/lib.sh"

listen phone alice phone "$PREFIX/inbox/alice/phone"

say "alice's laptop sends \"are you there?\" to bob, who is offline"
cid=$(date +%s%N | cut -c1-15)
pub alice laptop "$PREFIX/dm/bob" "{\"cid\": $cid, \"body\": \"b64:$(b64 'are you there?')\"}"
expect phone ".k == \"msg\" and .cid == $cid"
seq=$(events phone | jq -r "select(.k == \"msg\" and .cid == $cid) | .seq")
echo "  stored as seq $seq of dm:alice:bob (✓)"

say "bob's phone says delivered (✓✓)"
pub bob phone "$PREFIX/receipt" "{\"s\": \"delivered\", \"conv\": \"dm:alice:bob\", \"seqs\": [$seq]}"
expect phone ".k == \"receipt\" and .s == \"delivered\" and .by == \"bob\" and (.seqs | index($seq))"

say "bob's phone says read"
pub bob phone "$PREFIX/receipt" "{\"s\": \"read\", \"conv\": \"dm:alice:bob\", \"seqs\": [$seq]}"
expect phone ".k == \"receipt\" and .s == \"read\" and .by == \"bob\" and (.seqs | index($seq))"

say "a repeated delivered receipt changes nothing: no new event"
pub bob phone "$PREFIX/receipt" "{\"s\": \"delivered\", \"conv\": \"dm:alice:bob\", \"seqs\": [$seq]}"
sleep 0.5
n=$(events phone | jq -c "select(.k == \"receipt\" and (.seqs | index($seq)))" | wc -l)
[ "$n" -eq 2 ] || fail "expected 2 receipt events for seq $seq, got $n"
echo "  still 2 receipt events for seq $seq"
ok "receipts"
