#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# 9. Protocol v2: fewer packets per chat event, for a device that asks
#    (docs/PROTOCOL.md "Capabilities (v2)"). ivan's phone declares the
#    capabilities sents, rcpts and batch on chat/ctl *before* it subscribes
#    to its inbox, so the replay its subscription starts already uses them;
#    the server keeps them with the device. Its replay then comes in `batch`
#    events (many queued events in one PUBLISH), and receipts for ivan's
#    messages as `rcpts` (one event per conversation and state for what
#    arrived together). judy's devices and ivan's laptop declared nothing:
#    they keep the v1 events. (`sents`, the gathered confirmations of a
#    device's own sends, go to the connection that sent: a client that
#    publishes and subscribes on one connection sees them, as chat-client
#    and the web client do; mosquitto_pub's connection ends at its PUBACK.)
. "$(dirname "$0")/lib.sh"

v2='["sents", "rcpts", "batch"]'
say "ivan's phone declares $v2 (chat/ctl caps; its PUBACK means they are kept)"
pub ivan phone "$PREFIX/ctl" "{\"op\": \"caps\", \"rid\": 1, \"caps\": $v2}"
token judy phone > /dev/null

say "judy sends ivan two messages while his phone is offline"
cid=$(date +%s%N | cut -c1-15)
pub judy phone "$PREFIX/dm/ivan" "{\"cid\": $cid, \"body\": \"b64:$(b64 "first of two ($cid)")\"}"
pub judy phone "$PREFIX/dm/ivan" "{\"cid\": $((cid + 1)), \"body\": \"b64:$(b64 "second of two ($cid)")\"}"

say "ivan's phone subscribes: the replay brings both in one batch event, then sync done"
listen iv ivan phone "$PREFIX/inbox/ivan/phone"
expect iv ".k == \"batch\" and ([.evs[] | select(.k == \"msg\" and (.body | endswith(\"($cid)\")))] | length) == 2"
expect iv '.k == "sync" and .done'

say "ivan's laptop (v1) writes to judy twice; his phone gets its copies live"
mark iv
pub ivan laptop "$PREFIX/dm/judy" "{\"cid\": $((cid + 2)), \"body\": \"b64:$(b64 'got both')\"}"
pub ivan laptop "$PREFIX/dm/judy" "{\"cid\": $((cid + 3)), \"body\": \"b64:$(b64 'thanks')\"}"
expect iv ".k == \"msg\" and .cid == $((cid + 3))"
read -r s1 s2 < <(events iv | jq -r "select(.k == \"msg\" and .cid > $((cid + 1))) | .seq" | paste -sd' ')

say "judy's phone acknowledges both in one receipt: ivan's phone gets one rcpts event"
pub judy phone "$PREFIX/receipt" "{\"s\": \"delivered\", \"conv\": \"dm:ivan:judy\", \"seqs\": [$s1, $s2]}"
expect iv ".k == \"rcpts\" and .s == \"delivered\" and .conv == \"dm:ivan:judy\" and ([.sets[] | select(.by | index(\"judy\")) | .seqs[]] | sort) == [$s1, $s2]"
say "... and reads them: one more, for \"read\""
pub judy phone "$PREFIX/receipt" "{\"s\": \"read\", \"conv\": \"dm:ivan:judy\", \"seqs\": [$s1, $s2]}"
expect iv ".k == \"rcpts\" and .s == \"read\" and ([.sets[] | select(.by | index(\"judy\")) | .seqs[]] | sort) == [$s1, $s2]"
nothing iv '.k == "receipt"'

say "ivan's phone acknowledges what it got (the next run starts clean)"
stop iv
got=$(events iv | jq -r '(.evs // [.])[] | select(.k == "msg") | .seq' | sort -un | paste -sd, -)
pub ivan phone "$PREFIX/receipt" "{\"s\": \"delivered\", \"conv\": \"dm:ivan:judy\", \"seqs\": [$got]}"
ok "protocol v2: a batch on the replay, rcpts for receipts"
