#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# 1. Provision devices with chatctl. Each `chatctl device add U D` prints the
#    new device's token once; the device connects with username = client id
#    = U/D and that token as password. (Tokens are kept in $CHAT_STATE.)
. "$(dirname "$0")/lib.sh"

say "provision alice's phone and laptop, bob's phone, carol's phone"
for dev in alice/phone alice/laptop bob/phone carol/phone; do
  t=$(token "${dev%/*}" "${dev#*/}")
  [ ${#t} -ge 32 ] || fail "token of $dev looks wrong"
  echo "  $dev  token ${t:0:6}… (${#t} characters)"
done

say "a wrong token is refused at CONNECT"
if mosquitto_pub -h "$CHAT_HOST" -p "$CHAT_PORT" -i alice/phone -u alice/phone -P wrong \
     -t "$PREFIX/sync" -m x -q 1 2>"$SCRATCH/err"; then
  fail "a wrong token was accepted"
fi
echo "  $(head -1 "$SCRATCH/err")"
ok "devices provisioned"
