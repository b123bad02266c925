#!/usr/bin/python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Provision chat devices from an application's backend, without the admin
token: connect as a service account with the provisioner role and use the
three commands it may run over $CONTROL/chat/v1 (docs/PROTOCOL.md §8).

    chatctl service add shop --role provisioner > shop.token     # once, as root
    examples/provision.py -u shop --token-file shop.token add bob tablet
    examples/provision.py -u shop --token-file shop.token remove bob tablet
    examples/provision.py -u shop --token-file shop.token stats

`add` prints the new device's token (hand it to the device, keep no copy).
Needs python3-paho-mqtt and python3-cbor2 (Debian 12). Exit status 0 on
success, 1 with the server's reason on stderr otherwise.
"""

import argparse
import random
import sys
import threading

import cbor2
import paho.mqtt.client as mqtt

REQUEST = "$CONTROL/chat/v1"
RESPONSE = "$CONTROL/chat/v1/response"


def new_client(client_id):
    # paho-mqtt 2 wants the callback API version; Debian 12's 1.6 has none
    if hasattr(mqtt, "CallbackAPIVersion"):
        return mqtt.Client(mqtt.CallbackAPIVersion.VERSION1, client_id=client_id,
                           protocol=mqtt.MQTTv311)
    return mqtt.Client(client_id=client_id, protocol=mqtt.MQTTv311)


def call(host, port, name, token, request, cafile=None, timeout=10):
    """Sends one request as service account `name`; returns the reply (a dict)."""
    rid = random.randrange(1, 2**32)
    request = dict(request, rid=rid)
    done = threading.Event()
    reply = {}

    c = new_client("%s-%08x" % (name, rid))
    c.username_pw_set(name, token)
    if cafile:
        c.tls_set(ca_certs=cafile)

    def on_connect(client, userdata, flags, rc):
        if rc != 0:
            reply.update(ok=False, code="connect", msg="the broker refused the login (%d)" % rc)
            done.set()
            return
        client.subscribe(RESPONSE, qos=1)

    def on_subscribe(client, userdata, mid, granted):
        client.publish(REQUEST, cbor2.dumps(request), qos=1)

    def on_message(client, userdata, msg):
        m = cbor2.loads(msg.payload)
        if m.get("rid") == rid:  # the server answers this client only, by rid
            reply.update(m)
            done.set()

    c.on_connect, c.on_subscribe, c.on_message = on_connect, on_subscribe, on_message
    c.connect(host, port, keepalive=30)
    c.loop_start()
    try:
        if not done.wait(timeout):
            return {"ok": False, "code": "timeout", "msg": "no answer within %d s" % timeout}
        return reply
    finally:
        c.disconnect()
        c.loop_stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], add_help=False)
    ap.add_argument("--help", action="help")
    ap.add_argument("-h", dest="host", default="127.0.0.1")
    ap.add_argument("-p", dest="port", type=int, default=1883)
    ap.add_argument("-u", dest="name", required=True, help="the provisioner account")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--cafile", help="TLS: the CA of the broker's certificate")
    ap.add_argument("command", choices=("add", "remove", "stats"))
    ap.add_argument("args", nargs="*", metavar="U D")
    a = ap.parse_args()
    if (a.command == "stats") != (len(a.args) == 0) or len(a.args) not in (0, 2):
        ap.error("add and remove take U D; stats takes nothing")
    with open(a.token_file) as f:
        token = f.read().strip()

    if a.command == "stats":
        req = {"cmd": "stats"}
    else:
        req = {"cmd": "device." + a.command, "user": a.args[0], "device": a.args[1]}
    r = call(a.host, a.port, a.name, token, req, cafile=a.cafile)
    if not r.get("ok"):
        print("provision.py: %s failed: %s: %s" % (req["cmd"], r.get("code"), r.get("msg")),
              file=sys.stderr)
        return 1
    if a.command == "add":
        print(r["token"])
    elif a.command == "stats":
        for k in sorted(r["counters"]):
            print(k, r["counters"][k])
    return 0


if __name__ == "__main__":
    sys.exit(main())
