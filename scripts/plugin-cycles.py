#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""plugin-cycles.py — the call graph between plugin/'s files, and its cycles.

An edge A -> B means a function in A calls a non-static function defined
in B (found with ctags; calls found as `name(` outside comments and
strings). A static inline function in a header counts as the calls it
makes. Prints each strongly connected component of more than one file
(a cycle), with the edges inside it; `-f` adds the functions called
along each, `-v` prints every edge.

Usage: scripts/plugin-cycles.py [-v] [-f] [plugin-dir]
"""
import os
import re
import subprocess
import sys

verbose = "-v" in sys.argv[1:]
names = "-f" in sys.argv[1:]
args = [a for a in sys.argv[1:] if a not in ("-v", "-f")]
root = args[0] if args else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugin")
files = sorted(f for f in os.listdir(root) if f.endswith(".c"))
headers = sorted(f for f in os.listdir(root) if f.endswith(".h"))


def strip(src):
    src = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group(0).count("\n"), src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r'"(\\.|[^"\\\n])*"', '""', src)
    src = re.sub(r"'(\\.|[^'\\\n])*'", "''", src)
    return src


def text(f):
    with open(os.path.join(root, f)) as fh:
        return strip(fh.read())


# Non-static functions, by the file that defines them.
out = subprocess.run(["ctags", "-x", "--c-kinds=f", "--extras=-F", "--language-force=C"]
                     + [os.path.join(root, f) for f in files],
                     capture_output=True, text=True, check=True).stdout
owner = {}
for line in out.splitlines():
    name, _kind, _line, path = line.split()[:4]
    owner[name] = os.path.basename(path)

calls_re = re.compile(r"\b([A-Za-z_]\w*)\s*\(")


def called(src):
    return {m.group(1) for m in calls_re.finditer(src)}


# Static inline functions in the headers: what they call.
inline = {}
for h in headers:
    src = text(h)
    for m in re.finditer(r"static inline [^;{]*?\b(\w+)\s*\([^)]*\)\s*\{", src):
        depth, i = 1, m.end()
        while depth and i < len(src):
            depth += {"{": 1, "}": -1}.get(src[i], 0)
            i += 1
        inline[m.group(1)] = called(src[m.end():i])


def targets(names, seen=()):
    for n in names:
        if n in owner:
            yield owner[n]
        elif n in inline and n not in seen:
            yield from targets(inline[n], seen + (n,))


edges = {f: set() for f in files}
via = {}
for f in files:
    for n in called(text(f)):
        for t in targets([n]):
            if t != f:
                edges[f].add(t)
                via.setdefault((f, t), set()).add(n)

# Tarjan's strongly connected components.
index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]


def visit(v):
    index[v] = low[v] = counter[0]
    counter[0] += 1
    stack.append(v)
    on.add(v)
    for w in sorted(edges[v]):
        if w not in index:
            visit(w)
            low[v] = min(low[v], low[w])
        elif w in on:
            low[v] = min(low[v], index[w])
    if low[v] == index[v]:
        scc = []
        while True:
            w = stack.pop()
            on.discard(w)
            scc.append(w)
            if w == v:
                break
        sccs.append(sorted(scc))


sys.setrecursionlimit(10000)
for f in files:
    if f not in index:
        visit(f)

if verbose:
    for f in files:
        print(f"{f} -> {' '.join(sorted(edges[f]))}")
cycles = [s for s in sccs if len(s) > 1]
nedges = sum(len(e) for e in edges.values())
print(f"{len(files)} files, {nedges} edges between them; {len(cycles)} cycle(s)")
for s in sorted(cycles, key=len, reverse=True):
    inner = sum(len(edges[f] & set(s)) for f in s)
    print(f"cycle of {len(s)} files ({inner} edges inside): {' '.join(s)}")
    for f in s:
        print(f"  {f} -> {' '.join(sorted(edges[f] & set(s)))}")
        if names:
            for t in sorted(edges[f] & set(s)):
                print(f"      {t}: {' '.join(sorted(via[(f, t)]))}")
