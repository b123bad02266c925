#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# 3. Offline delivery. alice writes while bob's phone is away; each send is
#    stored (PUBACK) and queued for bob/phone. When bob's phone comes back
#    and subscribes to its inbox, the server replays the queue in order and
#    ends with {"k":"sync","done":true} (an app may also ask for the same
#    replay with {} on chat/sync). What bob acknowledges as delivered leaves
#    his queue; anything else comes again on the next replay.
. "$(dirname "$0")/lib.sh"

say "bob's phone is offline; alice's phone sends three messages"
cid=$(date +%s%N | cut -c1-15)
for i in 1 2 3; do
  pub alice phone "$PREFIX/dm/bob" "{\"cid\": $((cid + i)), \"body\": \"b64:$(b64 "offline $i/$cid")\"}"
  echo "  sent \"offline $i/$cid\" (stored)"
done

say "bob's phone comes back and subscribes to its inbox: the queue is replayed"
listen bob bob phone "$PREFIX/inbox/bob/phone"
expect bob '.k == "sync" and .done == true' 10
for i in 1 2 3; do
  expect bob ".k == \"msg\" and .body == \"offline $i/$cid\"" 1
done
order=$(events bob | jq -r "select(.k == \"msg\" and (.body | startswith(\"offline \")) and (.body | endswith(\"/$cid\"))) | .body" | tr '\n' ' ')
[ "$order" = "offline 1/$cid offline 2/$cid offline 3/$cid " ] || fail "out of order: $order"
echo "  in order: $order"

say "bob's phone acknowledges what it got from alice (delivered)"
seqs=$(events bob | jq -r 'select(.k == "msg" and .conv == "dm:alice:bob") | .seq' | paste -sd, -)
stop bob
pub bob phone "$PREFIX/receipt" "{\"s\": \"delivered\", \"conv\": \"dm:alice:bob\", \"seqs\": [$seqs]}"
echo "  delivered: dm:alice:bob seqs $seqs"

say "the next time bob's phone connects, those are gone from its queue"
listen again bob phone "$PREFIX/inbox/bob/phone"
expect again '.k == "sync" and .done == true' 10
nothing again '.k == "msg" and .conv == "dm:alice:bob"'
echo "  nothing of dm:alice:bob replayed"
ok "offline delivery"
