#!/usr/bin/python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Summarizes chatbench result lines (bench/compare.sh writes them).

usage: summarize.py RESULTS.txt [--plots DIR]

Prints a Markdown table of medians over the repetitions and the ratios chat /
stock. A ratio is computed inside each repetition (both sides measured minutes
apart on the same machine) and the median of those ratios is shown. With
--plots, writes gnuplot data and PNGs to DIR (gnuplot must be installed).
"""

import os
import statistics
import subprocess
import sys


def parse(path):
    rows, machine = [], ""
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("# machine"):
                machine = line[len("# machine "):]
                continue
            d = {}
            for tok in line.split():
                if "=" in tok:
                    k, v = tok.split("=", 1)
                    d[k] = v
            rows.append(d)
    return rows, machine


def num(d, k):
    try:
        return float(d[k])
    except (KeyError, ValueError):
        return None


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def sel(rows, **kw):
    out = []
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()):
            out.append(r)
    return out


def by_rep(rows):
    return {r.get("rep"): r for r in rows}


def fmt(x, unit=""):
    if x is None:
        return "–"
    if abs(x) >= 100:
        s = "%.0f" % x
    elif abs(x) >= 10:
        s = "%.1f" % x
    else:
        s = "%.2f" % x
    return s + unit


def ratio_med(a_rows, b_rows, k_a, k_b=None):
    """median over reps of a[k_a] / b[k_b] (same rep)."""
    k_b = k_b or k_a
    a, b = by_rep(a_rows), by_rep(b_rows)
    rs = []
    for rep, ra in a.items():
        rb = b.get(rep)
        if rb is None:
            continue
        x, y = num(ra, k_a), num(rb, k_b)
        if x is not None and y:
            rs.append(x / y)
    return med(rs)


def iot_rows(rows, row):
    """The IoT rows (compare.sh, phase=iot / iot-dm); False if there are none."""
    def m(rs, k):
        return med([num(r, k) for r in rs])
    rs, rc = sel(rows, mode="relay", phase="iot", side="stock"), sel(rows, mode="relay", phase="iot", side="chat")
    d0, d1 = sel(rows, mode="dm", phase="iot-dm", spy="0"), sel(rows, mode="dm", phase="iot-dm", spy="1")
    if not (rs or rc or d0 or d1):
        return False
    r = ratio_med(rc, rs, "rate")
    row("IoT relay between anonymous clients, msgs/s (stock vs plugin loaded, allow_anonymous + "
        "foreign_acl allow)", fmt(m(rs, "rate")), fmt(m(rc, "rate")), fmt(r), "≥ 0.95×",
        "yes" if r and r >= 0.95 else "**no**")
    row("IoT relay: broker CPU µs per message", fmt(m(rs, "broker_cpu_us_per_msg")),
        fmt(m(rc, "broker_cpu_us_per_msg")), fmt(ratio_med(rc, rs, "broker_cpu_us_per_msg")), "", "")
    rt = sel(rows, mode="relay", phase="iot", side="thread")
    if rt:
        row("IoT relay, diagnostic: stock vs stock with one idle thread preloaded, msgs/s",
            fmt(m(rs, "rate")), fmt(m(rt, "rate")), fmt(ratio_med(rt, rs, "rate")), "", "")
        row("IoT relay, diagnostic: plugin loaded vs stock with one idle thread, msgs/s",
            fmt(m(rt, "rate")), fmt(m(rc, "rate")), fmt(ratio_med(rc, rt, "rate")), "", "")
    r = ratio_med(d1, d0, "rate")
    row("dm on that broker, msgs/s (without vs with an IoT `#` subscriber connected)",
        fmt(m(d0, "rate")), fmt(m(d1, "rate")), fmt(r), "no change beyond noise", "")
    row("dm: broker CPU µs per message (without vs with the `#` subscriber)",
        fmt(m(d0, "broker_cpu_us_per_msg")), fmt(m(d1, "broker_cpu_us_per_msg")),
        fmt(ratio_med(d1, d0, "broker_cpu_us_per_msg")), "", "")
    leaked = sum(int(num(x, "iot_sub_chat") or 0) for x in d1)
    row("the `#` subscriber: messages received / of them under chat/ (all reps)", "",
        "%d / %d" % (sum(int(num(x, "iot_sub_msgs") or 0) for x in d1), leaked), "", "0 of chat/",
        "yes" if d1 and leaked == 0 else "**no**")
    return True


def durable_rows(rows, row):
    """dm with sync writes on the patched broker (compare.sh, phase=durable /
    durable-half); False if there are none."""
    def m(rs, k):
        return med([num(r, k) for r in rs])
    on, off = sel(rows, mode="dm", phase="durable", sync="true"), sel(rows, mode="dm", phase="durable", sync="false")
    half = sel(rows, mode="dm", phase="durable-half")
    if not (on or off or half):
        return False
    r = ratio_med(on, off, "rate")
    row("patched broker: dm, sync_writes true (group commit) vs false, msgs/s",
        fmt(m(off, "rate")), fmt(m(on, "rate")), fmt(r), "≥ 0.8×", "yes" if r and r >= 0.8 else "**no**")
    row("patched broker: broker CPU µs per message, sync_writes false vs true",
        fmt(m(off, "broker_cpu_us_per_msg")), fmt(m(on, "broker_cpu_us_per_msg")),
        fmt(ratio_med(on, off, "broker_cpu_us_per_msg")), "", "")
    for k, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        c = m(half, k)
        tgt = met = ""
        if k == "p99_us":
            tgt = "≤ 3000 µs"
            met = "yes" if c is not None and c <= 3000 else "**no**"
        row("patched broker: dm sync_writes true, latency %s at half its max, µs" % name, "", fmt(c),
            "", tgt, met)
    row("patched broker: offered rate at half max (sync_writes true), msgs/s", "",
        fmt(m(half, "offered")), "", "", "")
    return True


def fanout_rows(rows, relay_max, rm, m, row):
    """The fanout phase (compare.sh, or --fanout-only without the relay rows)."""
    fan_s = sel(rows, mode="fanout", kind="stock")
    fan_c = sel(rows, mode="fanout", kind="chat", phase="fanout")
    fan_p = sel(rows, mode="fanout", kind="chat", phase="fanout-patched")
    fan_o = sel(rows, mode="fanout", kind="offline")
    if fan_s or fan_c:
        members = (fan_c or fan_s)[0].get("members", "?")
        v = m(fan_c, "rate")
        row("fanout: deliveries/s, group of %s, all online (stock: one topic, %s QoS 1 subscribers)"
            % (members, members), fmt(m(fan_s, "rate")), fmt(v), fmt(ratio_med(fan_c, fan_s, "rate")),
            "≥ 0.6× stock", "yes" if (ratio_med(fan_c, fan_s, "rate") or 0) >= 0.6 else "**no**")
        if relay_max:
            row("fanout: chat deliveries/s / stock relay msgs/s", fmt(rm), fmt(v),
                fmt(ratio_med(fan_c, relay_max, "rate")), "", "")
        row("fanout: broker CPU µs per delivery", fmt(m(fan_s, "broker_cpu_us_per_msg")),
            fmt(m(fan_c, "broker_cpu_us_per_msg")),
            fmt(ratio_med(fan_c, fan_s, "broker_cpu_us_per_msg")), "", "")
        row("fanout: broker CPU utilisation", fmt(m(fan_s, "broker_util")), fmt(m(fan_c, "broker_util")),
            "", "", "")
        row("fanout: bench CPU µs per delivery", fmt(m(fan_s, "bench_cpu_us_per_msg")),
            fmt(m(fan_c, "bench_cpu_us_per_msg")), "", "", "")
        row("fanout: sends/s (window %s)" % (fan_c or fan_s)[0].get("window", "?"),
            fmt(m(fan_s, "sends_per_s")), fmt(m(fan_c, "sends_per_s")), "", "", "")
        for k, name in (("p50_us", "p50"), ("p99_us", "p99")):
            row("fanout: send → last member, %s µs" % name, fmt(m(fan_s, k)), fmt(m(fan_c, k)),
                fmt(ratio_med(fan_c, fan_s, k)), "", "")
        if fan_c:
            row("fanout: delivered receipts sent by members (K×M = %s seqs)"
                % fmt(m(fan_c, "msgs")), "", fmt(m(fan_c, "receipts_sent")), "", "", "")
            row("fanout: sender's missing `sent` events / receipt seqs", "",
                "%s / %s" % (fmt(m(fan_c, "sender_missing_sent")),
                             fmt(m(fan_c, "sender_missing_receipt_seqs"))),
                "", "0 / 0", "yes" if all(r.get("sender_ok") == "1" for r in fan_c) else "**no**")
    if fan_p:
        row("fanout, patched broker, members send no receipts (PUBACK delivers): deliveries/s",
            fmt(m(fan_s, "rate")), fmt(m(fan_p, "rate")), fmt(ratio_med(fan_p, fan_s, "rate")),
            "≥ 0.6× stock", "yes" if (ratio_med(fan_p, fan_s, "rate") or 0) >= 0.6 else "**no**")
        row("fanout, patched: broker CPU µs per delivery", fmt(m(fan_s, "broker_cpu_us_per_msg")),
            fmt(m(fan_p, "broker_cpu_us_per_msg")), fmt(ratio_med(fan_p, fan_s, "broker_cpu_us_per_msg")),
            "", "")
        row("fanout, patched: sender's missing `sent` events / receipt seqs", "",
            "%s / %s" % (fmt(m(fan_p, "sender_missing_sent")), fmt(m(fan_p, "sender_missing_receipt_seqs"))),
            "", "0 / 0", "yes" if all(r.get("sender_ok") == "1" for r in fan_p) else "**no**")
    if fan_o:
        row("fanout offline: queue entries stored/s (group of %s)" % fan_o[0].get("members", "?"), "",
            fmt(m(fan_o, "rate")), "", "", "")
        row("fanout offline: broker CPU µs per queue entry", "", fmt(m(fan_o, "broker_cpu_us_per_msg")),
            "", "", "")


def idle_rows(idle_s, idle_c, idle_r, m, row):
    """RSS per idle connection: stock, chat, and (--idle-only) chat with presence retained."""
    if idle_s or idle_c:
        s, c = m(idle_s, "rss_per_conn_bytes"), m(idle_c, "rss_per_conn_bytes")
        r = ratio_med(idle_c, idle_s, "rss_per_conn_bytes")
        row("idle: RSS per connection, bytes (%s conns)" % (idle_c or idle_s)[0].get("conns"), fmt(s), fmt(c),
            fmt(r), "≤ 1.2×", "yes" if r and r <= 1.2 else "**no**")
        row("idle: connections up", fmt(m(idle_s, "up")), fmt(m(idle_c, "up")), "", "", "")
        row("idle: broker CPU µs per connect", fmt(m(idle_s, "broker_cpu_us_per_conn")),
            fmt(m(idle_c, "broker_cpu_us_per_conn")), "", "", "")
    if idle_r:
        r = ratio_med(idle_r, idle_s, "rss_per_conn_bytes")
        row("idle, presence_retained true: RSS per connection, bytes", fmt(m(idle_s, "rss_per_conn_bytes")),
            fmt(m(idle_r, "rss_per_conn_bytes")), fmt(r), "", "")


def keys_rows(keys0, keys_nolog, m, row):
    """compare.sh --keys-only: the key server with and without the key
    directory log (KS_NOLOG)."""
    for name, rs in (("with the key directory log", keys0), ("without (KS_NOLOG)", keys_nolog)):
        if not rs:
            continue
        row("keys %s: bundles/s" % name, "", fmt(m(rs, "rate")), "", "", "")
        row("keys %s: broker / key server CPU µs per bundle" % name, "",
            "%s / %s" % (fmt(m(rs, "broker_cpu_us_per_msg")), fmt(m(rs, "ks_cpu_us_per_msg"))),
            "", "", "")
        row("keys %s: p50 / p99 request latency, µs" % name, "",
            "%s / %s" % (fmt(m(rs, "p50_us")), fmt(m(rs, "p99_us"))), "", "", "")
    if keys0 and keys_nolog:
        a, b = by_rep(keys0), by_rep(keys_nolog)
        rs = [num(a[k], "rate") / num(b[k], "rate") for k in a if k in b and num(b[k], "rate")]
        cs = [num(a[k], "ks_cpu_us_per_msg") / num(b[k], "ks_cpu_us_per_msg")
              for k in a if k in b and num(b[k], "ks_cpu_us_per_msg")]
        row("keys with / without the log: bundles/s, key server CPU per bundle", "",
            "%s, %s" % (fmt(med(rs)), fmt(med(cs))), "", "", "")


def v2_rows(rows, row, relay_max, dm_max, relay_half):
    """dm with the protocol v2 capabilities (compare.sh phase=v2max / v2half /
    patched-v2); False if there are none."""
    def m(rs, k):
        return med([num(r, k) for r in rs])
    vmax, vhalf = sel(rows, mode="dm", phase="v2max"), sel(rows, mode="dm", phase="v2half")
    vp = sel(rows, mode="dm", phase="patched-v2")
    if not (vmax or vhalf or vp):
        return False
    caps = (vmax or vhalf or vp)[0].get("caps", "?")
    rr = ratio_med(vmax, relay_max, "rate")
    row("v2 dm (caps %s): throughput, msgs/s" % caps, fmt(m(relay_max, "rate")), fmt(m(vmax, "rate")),
        fmt(rr), "≥ 0.6×", "yes" if rr and rr >= 0.6 else "**no**")
    row("v2 dm: broker CPU µs per message (at max rate)", fmt(m(relay_max, "broker_cpu_us_per_msg")),
        fmt(m(vmax, "broker_cpu_us_per_msg")), fmt(ratio_med(vmax, relay_max, "broker_cpu_us_per_msg")), "", "")
    row("v2 dm / v1 dm (msgs/s)", "", "", fmt(ratio_med(vmax, dm_max, "rate")), "", "")
    row("v2 dm: events to a sender per message (sent+sents+receipt+rcpts)", "",
        fmt(med([num(r, "sender_events") / num(r, "msgs") for r in vmax
                 if num(r, "sender_events") is not None and num(r, "msgs")])), "", "", "")
    for k, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        c = m(vhalf, k)
        tgt = met = ""
        if k == "p99_us":
            tgt = "≤ 2000 µs"
            met = "yes" if c is not None and c <= 2000 else "**no**"
        row("v2 dm latency %s at half its max, µs" % name, fmt(m(relay_half, k)), fmt(c),
            fmt(ratio_med(vhalf, relay_half, k)), tgt, met)
    if vp:
        relay_p = sel(rows, mode="relay", phase="patched")
        rp = ratio_med(vp, relay_p, "rate")
        row("v2 dm on the patched broker (server.puback_delivered: no app receipts), msgs/s",
            fmt(m(relay_p, "rate")), fmt(m(vp, "rate")), fmt(rp), "", "")
        row("v2 dm on the patched broker: broker CPU µs per message", fmt(m(relay_p, "broker_cpu_us_per_msg")),
            fmt(m(vp, "broker_cpu_us_per_msg")), fmt(ratio_med(vp, relay_p, "broker_cpu_us_per_msg")), "", "")
    return True


def ejabberd_rows(rows, row, dm_max):
    """ejabberd doing the dm's 1:1 flow (compare.sh phase=peer peer=ejabberd,
    chatbench xmpp); False if there are none."""
    def m(rs, k):
        return med([num(r, k) for r in rs])
    ej = sel(rows, mode="xmpp", phase="peer", peer="ejabberd")
    if not ej:
        return False
    best = sel(rows, mode="dm", phase="v2max") or dm_max
    r = ratio_med(best, ej, "rate")
    row("peer ejabberd (XEP-0184 receipts, XEP-0198 acks): the dm's 1:1 flow, msgs/s; ratio dm%s / ejabberd"
        % (" v2" if best is not dm_max else ""), fmt(m(ej, "rate")), fmt(m(best, "rate")), fmt(r), "≥ 3×",
        "yes" if r and r >= 3 else "**no**")
    row("peer ejabberd: server CPU µs per message (all its cores) vs dm", fmt(m(ej, "broker_cpu_us_per_msg")),
        fmt(m(best, "broker_cpu_us_per_msg")), fmt(ratio_med(best, ej, "broker_cpu_us_per_msg")), "", "")
    row("peer ejabberd: bench CPU µs per message (the load generator)", fmt(m(ej, "bench_cpu_us_per_msg")),
        fmt(m(best, "bench_cpu_us_per_msg")), "", "", "")
    return True


def realistic_rows(rows, row):
    """The realistic shape (compare.sh --realistic, phase=real); False if there are none."""
    def m(rs, k):
        return med([num(r, k) for r in rs])
    st = sel(rows, mode="relay", phase="real", side="stock")
    if not st and not sel(rows, phase="real"):
        return False
    ex = (st or sel(rows, phase="real"))[0]
    row("**realistic shape**: %s pairs (%d devices), %s msgs/s offered in all, %s msgs a row"
        % (ex.get("pairs", "?"), 2 * int(ex.get("pairs", "0") or 0), ex.get("offered", "?"), ex.get("msgs", "?")),
        "stock relay", "", "", "", "")
    row("realistic: stock relay broker CPU µs per message / p50 / p99 / p99.9 µs", "",
        "%s / %s / %s / %s" % (fmt(m(st, "broker_cpu_us_per_msg")), fmt(m(st, "p50_us")),
                               fmt(m(st, "p99_us")), fmt(m(st, "p999_us"))), "", "", "")
    caps_seen = sorted({r.get("caps") for r in sel(rows, mode="dm", phase="real") if r.get("caps")},
                       key=lambda c: (c != "v1", c))
    for kind in ("chat", "patched"):
        for caps in caps_seen:
            rs = sel(rows, mode="dm", phase="real", side=kind, caps=caps)
            if not rs:
                continue
            name = "%s dm %s" % ("stock-broker" if kind == "chat" else "patched-broker",
                                 "v1" if caps == "v1" else "v2 (" + caps + ")")
            cpu = ratio_med(rs, st, "broker_cpu_us_per_msg")
            row("realistic %s: broker CPU µs per message (ratio to the stock relay's)" % name,
                fmt(m(st, "broker_cpu_us_per_msg")), fmt(m(rs, "broker_cpu_us_per_msg")), fmt(cpu),
                "≤ 2×" if caps != "v1" else "", ("yes" if cpu and cpu <= 2 else "**no**") if caps != "v1" else "")
            p99 = m(rs, "p99_us")
            row("realistic %s: p50 / p99 / p99.9 µs, broker utilisation, lost" % name, "",
                "%s / %s / %s, %s, %s" % (fmt(m(rs, "p50_us")), fmt(p99), fmt(m(rs, "p999_us")),
                                          fmt(m(rs, "broker_util")), fmt(m(rs, "lost"))),
                "", "p99 ≤ 3000" if caps != "v1" else "",
                ("yes" if p99 is not None and p99 <= 3000 else "**no**") if caps != "v1" else "")
            row("realistic %s: events to a sender per message" % name, "",
                fmt(med([num(r, "sender_events") / num(r, "msgs") for r in rs
                         if num(r, "sender_events") is not None and num(r, "msgs")])), "", "", "")
    ej = sel(rows, mode="xmpp", phase="real", side="ejabberd")
    if ej:
        row("realistic ejabberd: server CPU µs per message (ratio to the stock relay's)",
            fmt(m(st, "broker_cpu_us_per_msg")), fmt(m(ej, "broker_cpu_us_per_msg")),
            fmt(ratio_med(ej, st, "broker_cpu_us_per_msg")), "", "")
        row("realistic ejabberd: p50 / p99 / p99.9 µs, server utilisation, lost", "",
            "%s / %s / %s, %s, %s" % (fmt(m(ej, "p50_us")), fmt(m(ej, "p99_us")), fmt(m(ej, "p999_us")),
                                      fmt(m(ej, "broker_util")), fmt(m(ej, "lost"))), "", "", "")
    return True


def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    path = args[0]
    plots = args[args.index("--plots") + 1] if "--plots" in args else None
    rows, machine = parse(path)
    bad = [r for r in rows if r.get("ok") == "0"]

    relay_max = sel(rows, mode="relay", phase="max")
    dm_max = sel(rows, mode="dm", phase="max", sync="false")
    dm_sync = sel(rows, mode="dm", phase="max", sync="true")
    relay_half = sel(rows, mode="relay", phase="half")
    dm_half = sel(rows, mode="dm", phase="half")
    replays = [r for r in rows if r.get("mode") == "replay"]
    windows = sorted({int(r["replay_window"]) for r in replays if "replay_window" in r})
    # log=0: a key server without the key directory log (compare.sh KS_NOLOG)
    keys0 = [r for r in sel(rows, mode="keys", nodelay="0") if r.get("log") != "0"]
    keys_nolog = sel(rows, mode="keys", nodelay="0", log="0")
    keys1 = sel(rows, mode="keys", nodelay="1")
    idle_s = sel(rows, mode="idle", kind="stock")
    idle_c = sel(rows, mode="idle", kind="chat", phase="idle")
    idle_r = sel(rows, mode="idle", kind="chat", phase="idle-retained")  # --idle-only
    reps = len(relay_max)

    def m(rs, k):
        return med([num(r, k) for r in rs])

    out = []
    p = out.append
    if machine:
        p("machine: " + machine)
    if not reps:   # compare.sh --iot-only / --durable-only / --keys-only / --realistic-only / --idle-only / --fanout-only
        reps = len(sel(rows, mode="relay", phase="real", side="stock")) or \
            len(sel(rows, mode="relay", phase="iot", side="chat")) or \
            len(sel(rows, mode="dm", phase="durable", sync="true")) or len(keys0) or len(idle_s) or \
            len(sel(rows, mode="fanout", kind="chat", phase="fanout"))
    p("reps: %d (median of the repetitions; ratio = median of the per-rep ratios)" % reps)
    p("")
    p("| measure | stock relay | chat | ratio chat/stock | target | met |")
    p("|---|---:|---:|---:|---|---|")

    def row(name, s, c, ratio, target="", met=""):
        p("| %s | %s | %s | %s | %s | %s |" % (name, s, c, ratio, target, met))

    if not relay_max:   # compare.sh --iot-only / --durable-only / --keys-only / --realistic-only
        realistic_rows(rows, row)
        iot_rows(rows, row)
        durable_rows(rows, row)
        keys_rows(keys0, keys_nolog, m, row)
        idle_rows(idle_s, idle_c, idle_r, m, row)
        fanout_rows(rows, [], None, m, row)
        if bad:
            p("")
            p("**%d run(s) reported a correctness failure (ok=0)**" % len(bad))
        print("\n".join(out))
        return

    rm, dmm = m(relay_max, "rate"), m(dm_max, "rate")
    rr = ratio_med(dm_max, relay_max, "rate")
    row("throughput, msgs/s (dm: sync_writes false)", fmt(rm), fmt(dmm), fmt(rr), "≥ 0.8×",
        "yes" if rr and rr >= 0.8 else "**no**")
    cs, cc = m(relay_max, "broker_cpu_us_per_msg"), m(dm_max, "broker_cpu_us_per_msg")
    row("broker CPU µs per message (at max rate)", fmt(cs), fmt(cc),
        fmt(ratio_med(dm_max, relay_max, "broker_cpu_us_per_msg")),
        "", "plugin adds %s µs" % fmt(cc - cs) if cs is not None and cc is not None else "")
    dm_nd = sel(rows, mode="dm", phase="nodrain")
    if dm_nd:
        row("dm throughput, inflight_drain 100000 (no flow-control spill), msgs/s", fmt(rm),
            fmt(m(dm_nd, "rate")), fmt(ratio_med(dm_nd, relay_max, "rate")), "", "")
        row("broker CPU µs per message, inflight_drain 100000", fmt(cs),
            fmt(m(dm_nd, "broker_cpu_us_per_msg")),
            fmt(ratio_med(dm_nd, relay_max, "broker_cpu_us_per_msg")), "", "")
    row("bench CPU µs per message (at max rate)", fmt(m(relay_max, "bench_cpu_us_per_msg")),
        fmt(m(dm_max, "bench_cpu_us_per_msg")), "", "", "")
    row("broker CPU utilisation at max rate", fmt(m(relay_max, "broker_util")),
        fmt(m(dm_max, "broker_util")), "", "", "")
    for k, name in (("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9")):
        s, c = m(relay_half, k), m(dm_half, k)
        tgt = met = ""
        if k == "p99_us":
            tgt = "dm ≤ 2000 µs"
            met = "yes" if c is not None and c <= 2000 else "**no**"
        row("latency %s at half max, µs" % name, fmt(s), fmt(c),
            fmt(ratio_med(dm_half, relay_half, k)), tgt, met)
    row("offered rate at half max, msgs/s", fmt(m(relay_half, "offered")), fmt(m(dm_half, "offered")),
        "", "", "")
    if dm_sync:   # not with compare.sh --dm-only
        sm = m(dm_sync, "rate")
        row("dm throughput, sync_writes true, msgs/s", fmt(rm), fmt(sm),
            fmt(ratio_med(dm_sync, relay_max, "rate")), "", "")
        row("dm sync true / sync false", "", "", fmt(ratio_med(dm_sync, dm_max, "rate")), "", "")
        row("broker CPU µs per message, sync_writes true", fmt(cs), fmt(m(dm_sync, "broker_cpu_us_per_msg")),
            "", "", "")
    v2_rows(rows, row, relay_max, dm_max, relay_half)
    relay_p = sel(rows, mode="relay", phase="patched")
    dm_p = sel(rows, mode="dm", phase="patched")
    if relay_p or dm_p:
        rp = ratio_med(dm_p, relay_p, "rate")
        row("patched broker (broker-patches/): throughput, msgs/s (dm: no app receipts, "
            "the PUBACK delivers)", fmt(m(relay_p, "rate")), fmt(m(dm_p, "rate")), fmt(rp), "≥ 0.8×",
            "yes" if rp and rp >= 0.8 else "**no**")
        row("patched broker: broker CPU µs per message", fmt(m(relay_p, "broker_cpu_us_per_msg")),
            fmt(m(dm_p, "broker_cpu_us_per_msg")), fmt(ratio_med(dm_p, relay_p, "broker_cpu_us_per_msg")),
            "", "")
        row("patched broker: dm / dm on stock mosquitto (msgs/s)", "", "",
            fmt(ratio_med(dm_p, dm_max, "rate")), "", "")
    peers = sorted({r["peer"] for r in rows if r.get("phase") == "peer" and r.get("peer") and r.get("mode") == "relay"})
    for name in peers:
        pr = sel(rows, mode="relay", phase="peer", peer=name)
        row("peer %s (not chat): the same relay, msgs/s" % name, fmt(rm), fmt(m(pr, "rate")),
            fmt(ratio_med(pr, relay_max, "rate")), "", "")
        row("peer %s: broker CPU µs per message" % name, fmt(cs),
            fmt(m(pr, "broker_cpu_us_per_msg")),
            fmt(ratio_med(pr, relay_max, "broker_cpu_us_per_msg")), "", "")
    ejabberd_rows(rows, row, dm_max)
    for w in windows:
        rw = [r for r in replays if r.get("replay_window") == str(w)]
        v = m(rw, "rate")
        row("replay drain, msgs/s (replay_window %d, max_queued %s)" % (w, rw[0].get("max_queued", "?")),
            fmt(rm), fmt(v), fmt(ratio_med(rw, relay_max, "rate")), "≥ 100000/s",
            "yes" if v and v >= 100000 else "**no**")
        row("replay broker CPU µs per message (window %d)" % w, "", fmt(m(rw, "broker_cpu_us_per_msg")),
            "", "", "")
    if keys0:
        v = m(keys0, "rate")
        row("keys: bundles/s", fmt(rm), fmt(v), fmt(ratio_med(keys0, relay_max, "rate")), "≥ 20000/s",
            "yes" if v and v >= 20000 else "**no**")
        row("keys: broker / key server CPU µs per bundle", "",
            "%s / %s" % (fmt(m(keys0, "broker_cpu_us_per_msg")), fmt(m(keys0, "ks_cpu_us_per_msg"))),
            "", "", "")
        row("keys: p50 / p99 request latency, µs", "",
            "%s / %s" % (fmt(m(keys0, "p50_us")), fmt(m(keys0, "p99_us"))), "", "", "")
    if keys_nolog:
        v = m(keys_nolog, "rate")
        row("keys without the key directory log (KS_NOLOG): bundles/s", "", fmt(v),
            fmt(ratio_med(keys0, keys_nolog, "rate")) + " with/without", "", "")
        row("keys without the log: broker / key server CPU µs per bundle", "",
            "%s / %s" % (fmt(m(keys_nolog, "broker_cpu_us_per_msg")),
                         fmt(m(keys_nolog, "ks_cpu_us_per_msg"))), "", "", "")
        row("keys without the log: p50 / p99 request latency, µs", "",
            "%s / %s" % (fmt(m(keys_nolog, "p50_us")), fmt(m(keys_nolog, "p99_us"))), "", "", "")
    if keys1:
        v = m(keys1, "rate")
        row("keys, key server with TCP_NODELAY (preload shim): bundles/s", "", fmt(v),
            fmt(ratio_med(keys1, keys0, "rate")) + " vs without", "", "")
    idle_rows(idle_s, idle_c, idle_r, m, row)
    fanout_rows(rows, relay_max, rm, m, row)
    iot_rows(rows, row)
    durable_rows(rows, row)
    realistic_rows(rows, row)
    walls = {}
    for r in rows:
        w = num(r, "wall_secs")
        if w is not None:
            k = "%s %s" % (r.get("mode", "?"), r.get("kind", r.get("phase", "")))
            walls[k] = walls.get(k, 0.0) + w
    if walls:
        p("")
        p("wall time per mode (all reps, set-up and waits included), s: " + ", ".join(
            "%s %.0f" % (k, v) for k, v in sorted(walls.items(), key=lambda kv: -kv[1])))
    if bad:
        p("")
        p("**%d run(s) reported a correctness failure (ok=0)**: %s" % (
            len(bad), "; ".join("%s %s" % (r.get("mode"), r.get("phase", "")) for r in bad)))
    print("\n".join(out))

    if plots:
        make_plots(rows, plots, windows)


def make_plots(rows, d, windows):
    # open-loop runs only (fixed offered rate): the half-max runs and the sweep
    sweep = [r for r in rows if r.get("phase") in ("sweep", "half") and r.get("mode") in ("relay", "dm")
             and r.get("sync", "false") == "false"]
    for mode in ("relay", "dm"):
        pts = []
        for r in sweep:
            if r["mode"] != mode:
                continue
            x = num(r, "offered")
            pts.append((x, num(r, "p50_us"), num(r, "p99_us"), num(r, "p999_us"), r["phase"]))
        pts.sort()
        with open(os.path.join(d, "lat_%s.dat" % mode), "w") as f:
            f.write("# offered_msgs_per_s p50_us p99_us p999_us phase\n")
            for t in pts:
                f.write("%s %s %s %s %s\n" % t)
    # throughput bars
    def m(rs, k):
        return med([num(r, k) for r in rs])
    bars = [("stock relay", m(sel(rows, mode="relay", phase="max"), "rate")),
            ("chat dm", m(sel(rows, mode="dm", phase="max", sync="false"), "rate")),
            ("dm sync", m(sel(rows, mode="dm", phase="max", sync="true"), "rate"))]
    for w in windows:
        bars.append(("replay w%d" % w, m([r for r in rows if r.get("mode") == "replay"
                                            and r.get("replay_window") == str(w)], "rate")))
    bars.append(("keys", m(sel(rows, mode="keys", nodelay="0"), "rate")))
    if sel(rows, mode="keys", nodelay="1"):
        bars.append(("keys nodelay", m(sel(rows, mode="keys", nodelay="1"), "rate")))
    for kind, name in (("stock", "stock fanout"), ("chat", "chat fanout"), ("offline", "fanout offline")):
        if sel(rows, mode="fanout", kind=kind):
            bars.append((name, m(sel(rows, mode="fanout", kind=kind), "rate")))
    with open(os.path.join(d, "throughput.dat"), "w") as f:
        for name, v in bars:
            if v is not None:
                f.write('"%s" %.0f\n' % (name, v))
    cpu = [("stock relay", m(sel(rows, mode="relay", phase="max"), "broker_cpu_us_per_msg")),
           ("chat dm", m(sel(rows, mode="dm", phase="max", sync="false"), "broker_cpu_us_per_msg")),
           ("dm sync", m(sel(rows, mode="dm", phase="max", sync="true"), "broker_cpu_us_per_msg"))]
    for w in windows:
        cpu.append(("replay w%d" % w, m([r for r in rows if r.get("mode") == "replay"
                                           and r.get("replay_window") == str(w)], "broker_cpu_us_per_msg")))
    cpu.append(("keys (broker)", m(sel(rows, mode="keys", nodelay="0"), "broker_cpu_us_per_msg")))
    cpu.append(("keys (keyserver)", m(sel(rows, mode="keys", nodelay="0"), "ks_cpu_us_per_msg")))
    for kind, name in (("stock", "stock fanout"), ("chat", "chat fanout"), ("offline", "fanout offline")):
        if sel(rows, mode="fanout", kind=kind):
            cpu.append((name, m(sel(rows, mode="fanout", kind=kind), "broker_cpu_us_per_msg")))
    with open(os.path.join(d, "cpu.dat"), "w") as f:
        for name, v in cpu:
            if v is not None:
                f.write('"%s" %.1f\n' % (name, v))
    gp = """
set terminal pngcairo size 1000,560 font "DejaVu Sans,11"
set grid ytics
set key outside right top
set output "%(d)s/latency_vs_load.png"
set title "Send-to-delivery latency vs offered load (open loop, QoS 1, 100-byte bodies)"
set xlabel "offered load, messages/s (log)"
set ylabel "latency, µs (log)"
set logscale xy
set format y "%%.0f"
set format x "%%.0f"
plot "%(d)s/lat_relay.dat" using 1:2 with linespoints lw 2 pt 7 lc rgb "#1f77b4" title "stock relay p50", \\
     "%(d)s/lat_relay.dat" using 1:3 with linespoints lw 2 pt 5 lc rgb "#6baed6" title "stock relay p99", \\
     "%(d)s/lat_relay.dat" using 1:4 with linespoints lw 1 pt 4 dt 2 lc rgb "#9ecae1" title "stock relay p99.9", \\
     "%(d)s/lat_dm.dat" using 1:2 with linespoints lw 2 pt 7 lc rgb "#d62728" title "chat dm p50", \\
     "%(d)s/lat_dm.dat" using 1:3 with linespoints lw 2 pt 5 lc rgb "#ff7f0e" title "chat dm p99", \\
     "%(d)s/lat_dm.dat" using 1:4 with linespoints lw 1 pt 4 dt 2 lc rgb "#fdae6b" title "chat dm p99.9", \\
     2000 with lines lc rgb "#2ca02c" dt 3 title "target: dm p99 2 ms"
unset logscale xy
set format y "%%g"
set format x "%%g"
set key default
set output "%(d)s/throughput.png"
set title "Throughput per mode (median of repetitions)"
set xlabel ""
set ylabel "messages (bundles, fanout deliveries) per second"
set style fill solid 0.8 border -1
set boxwidth 0.6
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set xtics rotate by -25
unset key
plot "%(d)s/throughput.dat" using 0:2:xtic(1) with boxes lc rgb "#4c72b0", \\
     "" using 0:2:(sprintf("%%.0f", $2)) with labels offset 0,0.8
set output "%(d)s/cpu_per_msg.png"
set title "Broker CPU per message (µs; /proc/PID/stat utime+stime)"
set ylabel "µs of CPU per message"
plot "%(d)s/cpu.dat" using 0:2:xtic(1) with boxes lc rgb "#dd8452", \\
     "" using 0:2:(sprintf("%%.1f", $2)) with labels offset 0,0.8
""" % {"d": d}
    with open(os.path.join(d, "plots.gp"), "w") as f:
        f.write(gp)
    r = subprocess.run(["gnuplot", os.path.join(d, "plots.gp")], capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write("gnuplot failed: %s\n" % r.stderr)
    else:
        print("\nplots: %s/{latency_vs_load,throughput,cpu_per_msg}.png" % d)


if __name__ == "__main__":
    main()
