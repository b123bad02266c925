#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# 8. An attachment through chat-media (docs/PROTOCOL.md §13). alice/phone
#    asks for an upload slot over MQTT, PUTs the file with curl, and would
#    then send bob the pointer {id, key, digest, ...} inside an end-to-end
#    encrypted message (chat-client --send-file does all of it). bob/phone
#    asks for its own download URL and fetches the file in two ranges, as a
#    client resumes after an interruption; then the blob is gone. The bytes
#    here are random: they stand for the ciphertext a client uploads (the
#    service never sees anything else).
# CHAT_MEDIA_URL: where chat-media listens (make run: http://127.0.0.1:8090).
. "$(dirname "$0")/lib.sh"

command -v curl > /dev/null || fail "curl is missing (apt-get install curl)"
MEDIA_URL=${CHAT_MEDIA_URL:-http://127.0.0.1:8090}
file=$SCRATCH/voice.enc
head -c 60999 /dev/urandom > "$file"   # a short voice note
size=$(stat -c %s "$file")

# media U D JSON: one request as device U/D on chat/media/req/U/D and its
# answer from chat/media/resp/U/D, as JSON. mosquitto_rr does both on one
# connection (a device has only one: its client id is U/D). Its -f and -s
# send an empty payload (mosquitto-clients 2.0.11), so the request goes as
# -m, an argument: its CBOR must hold no NUL byte (and not end in a
# newline), which the numbers below are chosen for (rid < 24, a size of
# two bytes without a zero). A real client has no such limit.
media() {
  "$CBOR" encode "$3" > "$SCRATCH/req"
  [ "$(tr -d '\000' < "$SCRATCH/req" | wc -c)" = "$(wc -c < "$SCRATCH/req")" ] \
    || fail "this request's CBOR holds a NUL byte: mosquitto_rr -m cannot carry it"
  mosquitto_rr -h "$CHAT_HOST" -p "$CHAT_PORT" -i "$1/$2" -u "$1/$2" -P "$(token "$1" "$2")" \
    -t "$PREFIX/media/req/$1/$2" -e "$PREFIX/media/resp/$1/$2" -m "$(cat "$SCRATCH/req")" \
    -q 1 -F %x -W 10 | "$CBOR" decode --hex --text || fail "no answer from chat-media"
}

say "alice/phone asks for a slot: $size bytes for bob/phone (on chat/media/req/alice/phone)"
rid=1
slot=$(media alice phone \
  "{\"op\": \"slot\", \"rid\": $rid, \"size\": $size, \"type\": \"image/jpeg\", \"to\": [\"bob/phone\"]}")
echo "  $slot"
[ "$(jq -r .ok <<< "$slot")" = true ] || fail "no slot"
id=$(jq -r .id <<< "$slot")
put=$(jq -r .put <<< "$slot")
case $put in "$MEDIA_URL"/v1/blob/*) ;; *) fail "the PUT URL $put is not under $MEDIA_URL" ;; esac

say "alice/phone uploads it with curl: 201, once; a replay is 409"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$file" "$put")
[ "$code" = 201 ] || fail "PUT answered $code"
echo "  PUT $code"
code=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT --data-binary @"$file" "$put")
[ "$code" = 409 ] || fail "a replayed PUT answered $code"
echo "  PUT again: $code"

say "alice/phone, not a recipient, gets no download URL"
r=$(media alice phone "{\"op\": \"get\", \"rid\": $((rid + 1)), \"id\": \"$id\"}")
echo "  $r"
[ "$(jq -r .code <<< "$r")" = not_found ] || fail "alice/phone got a grant"

say "bob/phone asks for its download URL and fetches the first 30000 bytes"
grant=$(media bob phone "{\"op\": \"get\", \"rid\": $((rid + 2)), \"id\": \"$id\"}")
echo "  $grant"
[ "$(jq -r .ok <<< "$grant")" = true ] || fail "bob/phone got no grant"
url=$(jq -r .url <<< "$grant")
code=$(curl -sS -o "$SCRATCH/part1" -w '%{http_code}' -r 0-29999 "$url")
[ "$code" = 206 ] || fail "the first range answered $code"
echo "  GET bytes 0-29999: $code, $(stat -c %s "$SCRATCH/part1") bytes"

say "... then resumes from byte 30000 to the end"
code=$(curl -sS -o "$SCRATCH/part2" -w '%{http_code}' -r 30000- "$url")
[ "$code" = 206 ] || fail "the resumed range answered $code"
cat "$SCRATCH/part1" "$SCRATCH/part2" > "$SCRATCH/got"
cmp -s "$file" "$SCRATCH/got" || fail "the downloaded bytes differ"
echo "  GET bytes 30000-: $code; the two parts are the uploaded file, byte for byte"

say "bob/phone, the only recipient, is done: the blob is deleted"
for _ in $(seq 40); do
  code=$(curl -sS -o /dev/null -w '%{http_code}' "$url")
  [ "$code" = 410 ] || [ "$code" = 404 ] && break
  sleep 0.05
done
[ "$code" = 410 ] || [ "$code" = 404 ] || fail "the URL still answers $code"
echo "  GET again: $code"
r=$(media bob phone "{\"op\": \"get\", \"rid\": $((rid + 3)), \"id\": \"$id\"}")
echo "  $r"
[ "$(jq -r .code <<< "$r")" = not_found ] || fail "the blob is still there"

say "nothing is listable"
code=$(curl -sS -o /dev/null -w '%{http_code}' "$MEDIA_URL/v1/blob/")
[ "$code" = 404 ] || fail "GET /v1/blob/ answered $code"
echo "  GET /v1/blob/: $code"
ok "attachment uploaded, fetched in two ranges, deleted"
