#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# 6. Presence. A device connects with a Last Will on chat/presence/U/D; the
#    server keeps one document per user on chat/presence/U: online
#    while any of U's devices is connected, offline with `seen` once the last
#    one has been gone for plugin_opt_presence_grace seconds (default 10) —
#    whether it left cleanly or its connection just died. Only U's devices and
#    users who share a conversation with U may watch it.
. "$(dirname "$0")/lib.sh"

say "alice (who has a conversation with bob) watches chat/presence/bob"
listen watch alice laptop "$PREFIX/presence/bob"

say "dave, a stranger to bob, may not"
listen stranger dave phone "$PREFIX/presence/bob"
[ "$(granted stranger)" = 128 ] || fail "dave was granted $(granted stranger)"
echo "  dave's SUBACK: 128 (refused)"

say "bob's phone connects, with its will on $PREFIX/presence/bob/phone"
listen bob bob phone "$PREFIX/inbox/bob/phone" --will-topic "$PREFIX/presence/bob/phone" --will-qos 1
latest watch '.s == "online"'
mark watch

say "bob's phone's connection dies (kill -9: no DISCONNECT; the broker sends its will)"
kill -9 "$PID_bob"
wait "$PID_bob" 2>/dev/null || true
expect watch '.s == "offline" and (.seen | type) == "number"' 25
ok "presence"
