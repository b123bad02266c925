#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""Puts the licence's two SPDX lines at the top of every tracked source file
that lacks them (after a shebang), in the comment style of its language.

    scripts/spdx.py          add the lines where they are missing
    scripts/spdx.py --check  list the files that lack them; exit 1 if any

Files that cannot carry a comment (data, images, patches, test corpora,
Markdown) are covered by .reuse/dep5 instead; `reuse lint` checks both
(tests/CMakeLists.txt: the `licence` test)."""

import os
import subprocess
import sys

# (split so that reuse does not read these constants as this file's own tags)
HOLDER = "SPDX-" "FileCopyrightText: 2026 The mosquitto-chat authors"
LICENCE = "SPDX-" "License-Identifier: EPL-2.0 OR BSD-3-Clause"

SLASH = (".c", ".h", ".cc", ".ts", ".mjs")
HASH = (".py", ".sh", ".in", ".gitignore", ".cmake", ".conf", ".dict", ".default")
HASH_NAMES = ("CMakeLists.txt", "Makefile", "series", "device-token", "cbor", "run")


def style(path):
    name = os.path.basename(path)
    if path.endswith(SLASH) or path.endswith(tuple(e + ".in" for e in SLASH)):
        return "//"
    if path.endswith(HASH) or name in HASH_NAMES:
        return "#"
    if path.startswith("man/") and path.rsplit(".", 1)[-1] in ("1", "5", "7", "8"):
        return '.\\"'
    if path.endswith(".html"):
        return "<!--"
    if path.endswith(".css"):
        return "/*"
    return None


CLOSE = {"<!--": " -->", "/*": " */"}


def main():
    check = "--check" in sys.argv[1:]
    root = subprocess.run(["git", "rev-parse", "--show-toplevel"], check=True,
                          capture_output=True, text=True).stdout.strip()
    files = subprocess.run(["git", "ls-files"], cwd=root, check=True, capture_output=True,
                           text=True).stdout.split()
    missing = []
    for rel in files:
        mark = style(rel)
        if mark is None:
            continue
        path = os.path.join(root, rel)
        with open(path, encoding="utf-8") as f:
            text = f.read()
        if LICENCE in text[:1000]:
            continue
        missing.append(rel)
        if check:
            continue
        lines = text.split("\n")
        at = 1 if lines and (lines[0].startswith("#!") or lines[0].lower().startswith("<!doctype")) else 0
        end = CLOSE.get(mark, "")
        lines[at:at] = ["%s %s%s" % (mark, HOLDER, end), "%s %s%s" % (mark, LICENCE, end)]
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))
    for rel in missing:
        print(("lacks SPDX lines: " if check else "added SPDX lines: ") + rel)
    return 1 if check and missing else 0


if __name__ == "__main__":
    sys.exit(main())
