# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The power cut: turns a directory that a process ran on under the
tests/powercut shim (LD_PRELOAD=build/lib/powercut.so, POWERCUT_DIR,
POWERCUT_LOG) and was then killed with SIGKILL into what a disk would hold
had the power gone at the same instant: every file cut to its last synced
length, every directory back to its namespace at its last fsync (created
files gone, renames undone, unlinked files back). The model, and what it
leaves out, is the top comment of tests/powercut/powercut.c.

    python3 powercut.py [--torn] DIR LOG   # applies the cut, prints what it dropped

apply() is the same from a test; it raises ModelError when the record shows
something the model cannot undo (an overwrite of synced bytes, a writable
shared mmap, a rename out of the directory) or does not match the disk.
"""

import os
import shutil
import sys


class ModelError(Exception):
    pass


def _parse(log_path):
    with open(log_path, errors="replace") as f:
        lines = f.read().split("\n")
    # A SIGKILL can only cut the last line short: each is one write().
    if lines and lines[-1] != "":
        lines = lines[:-1]
    events, problems = [], []
    for line in lines:
        if not line:
            continue
        ev = line.split("\t")
        if ev[0] == "F":
            # the namespace call logged before it failed: it never happened
            for i in range(len(events) - 1, -1, -1):
                if events[i][0] in "RULM":
                    del events[i]
                    break
            continue
        if ev[0] in ("!", "O", "X"):
            problems.append(line)
        events.append(ev)
    return events, problems


def _children(live, d):
    pre = "" if d == "." else d + "/"
    return {p[len(pre):]: e for p, e in live.items()
            if p != "." and p.startswith(pre) and "/" not in p[len(pre):]}


def _move(live, old, new):
    """A rename in the replayed namespace; a directory takes its subtree."""
    e = live.pop(old)
    live[new] = e
    if e[0] == "d":
        for p in [p for p in live if p.startswith(old + "/")]:
            live[new + p[len(old):]] = live.pop(p)


def _drop(live, path):
    live.pop(path, None)
    for p in [p for p in live if p.startswith(path + "/")]:
        del live[p]


def replay(events):
    """Returns (durable: dir -> {name: ("f"|"d", ino)}, length: ino -> synced
    bytes, live: the namespace the record says the disk has now)."""
    live = {}          # relpath -> ("f", ino) | ("d", ino)
    length = {}        # ino -> durable length
    durable = {}       # dir relpath -> {name: entry} at its last fsync
    baseline = True
    for ev in events:
        k = ev[0]
        if k == "B":
            live[ev[3]] = ("f", int(ev[1]))
            length[int(ev[1])] = int(ev[2])
        elif k == "BD":
            live[ev[2]] = ("d", int(ev[1]))
        elif k == "#":
            if baseline:   # everything there at the start is durable
                durable = {p: _children(live, p) for p, e in live.items() if e[0] == "d"}
                baseline = False
        elif k == "C":
            live[ev[2]] = ("f", int(ev[1]))
            length[int(ev[1])] = 0
        elif k == "S":
            length[int(ev[1])] = int(ev[2])
        elif k == "T":
            ino = int(ev[1])
            length[ino] = min(length.get(ino, int(ev[2])), int(ev[2]))
        elif k == "D":
            durable[ev[1]] = _children(live, ev[1])
        elif k == "R":
            if ev[1] in live:
                _move(live, ev[1], ev[2])
        elif k == "U":
            _drop(live, ev[1])
        elif k == "L":
            if ev[1] in live:
                live[ev[2]] = live[ev[1]]
        elif k == "M":
            live[ev[1]] = ("d", None)
            durable.setdefault(ev[1], {})
    return durable, length, live


def _disk(root, graves):
    """What is on disk: relpath -> ("f"|"d", ino), and ino -> a path that
    holds it (the graves included)."""
    tree, where = {".": ("d", os.stat(root).st_ino)}, {}
    for dirpath, dirnames, filenames in os.walk(root):
        for n in dirnames + filenames:
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            rel = os.path.relpath(p, root)
            if os.path.isdir(p) and not os.path.islink(p):
                tree[rel] = ("d", st.st_ino)
            else:
                tree[rel] = ("f", st.st_ino)
                where.setdefault(st.st_ino, p)
    if os.path.isdir(graves):
        for n in os.listdir(graves):
            p = os.path.join(graves, n)
            where.setdefault(os.lstat(p).st_ino, p)
    return tree, where


def _target(durable, d="."):
    """The tree after the cut: relpath -> entry, from the root's durable
    namespace down (a directory whose entry never became durable takes its
    subtree with it)."""
    out = {".": ("d", None)}
    for name, e in durable.get(d, {}).items():
        p = name if d == "." else d + "/" + name
        out[p] = e
        if e[0] == "d":
            sub = _target(durable, p)
            sub.pop(".")
            out.update(sub)
    return out


SECTOR = 512


def apply(root, log_path, torn=False):
    """Applies the cut to root; returns a report dict (see summary()).

    torn=True keeps more than was synced: each file's unsynced tail up to the
    sector boundary nearest its middle, as if write-back had reached that far
    when the power went (a prefix of the pages, cut at a sector: most often
    mid-record for RocksDB's WAL, which its recovery must take as the end)."""
    root = os.path.realpath(root)
    graves = log_path + ".graves"
    events, problems = _parse(log_path)
    if problems:
        raise ModelError("the record shows what the model cannot undo:\n" + "\n".join(problems))
    durable, length, live = replay(events)
    disk, where = _disk(root, graves)
    files = lambda t: {p: e[1] for p, e in t.items() if e[0] == "f"}
    if files(live) != files(disk):
        # The one namespace call logged just before the SIGKILL may not have
        # happened; nothing after it can depend on it (no fsync followed).
        last = max((i for i, e in enumerate(events) if e[0] in "RULMC"), default=None)
        if last is not None:
            _, _, live2 = replay(events[:last])
            if files(live2) == files(disk):
                live = live2
        if files(live) != files(disk):
            a, b = files(live), files(disk)
            diff = sorted(set(a.items()) ^ set(b.items()))
            raise ModelError("the record does not match the disk (a call the shim missed?): %r"
                             % diff[:20])
    target = _target(durable)
    report = {"removed": [], "restored": [], "cut": {}, "kept": {}}
    stage = log_path + ".stage"
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(stage)
    want = files(target)
    for p, ino in want.items():
        if ino not in where:
            raise ModelError("%s (inode %d) is durable but its content is gone" % (p, ino))
        sp = os.path.join(stage, str(ino))
        if not os.path.exists(sp):
            os.link(where[ino], sp)
    have = files(disk)
    # out with what the cut takes away, deepest first
    for p in sorted(disk, key=lambda p: -p.count("/")):
        if p == ".":
            continue
        full = os.path.join(root, p)
        if disk[p][0] == "d":
            if target.get(p, ("f",))[0] != "d":
                shutil.rmtree(full)
                report["removed"].append(p + "/")
        elif want.get(p) != have[p]:
            os.unlink(full)
            if p not in want:
                report["removed"].append(p)
    for p in sorted(target, key=lambda p: p.count("/")):
        if target[p][0] == "d":
            os.makedirs(os.path.join(root, p), exist_ok=True)
    for p, ino in sorted(want.items()):
        full = os.path.join(root, p)
        if not os.path.exists(full):
            os.link(os.path.join(stage, str(ino)), full)
            report["restored"].append(p)
        size, keep = os.path.getsize(full), length.get(ino, 0)
        if keep > size:
            raise ModelError("%s: synced %d bytes but holds %d" % (p, keep, size))
        if torn and keep < size:
            keep = max(keep, (keep + size) // 2 // SECTOR * SECTOR)
        if keep < size:
            os.truncate(full, keep)
            report["cut"][p] = size - keep
        report["kept"][p] = keep
    shutil.rmtree(stage)
    shutil.rmtree(graves, ignore_errors=True)
    return report


def summary(report):
    cut = ", ".join("%s -%d B" % kv for kv in sorted(report["cut"].items())) or "none"
    return ("power cut: %d bytes dropped (%s); removed: %s; restored: %s"
            % (sum(report["cut"].values()), cut, ", ".join(report["removed"]) or "none",
               ", ".join(report["restored"]) or "none"))


if __name__ == "__main__":
    args = sys.argv[1:]
    torn = args[:1] == ["--torn"]
    if torn:
        args = args[1:]
    if len(args) != 2:
        sys.stderr.write("usage: powercut.py [--torn] DIR LOG\n")
        sys.exit(2)
    print(summary(apply(args[0], args[1], torn)))
