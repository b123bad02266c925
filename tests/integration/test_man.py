# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
"""The man pages (man/): each renders without a warning, with groff as
man(1) runs it and with man -l itself, and names every option of its
program's --help (every command of chatctl's) and every plugin option of
plugin/options.c's table, so pages and programs cannot drift apart."""

import os
import re
import subprocess
import unittest

from chatlib import BUILD_DIR, SOURCE_DIR, main

PAGES = {"chatctl.1": "chatctl", "chat-keyserver.8": "chat-keyserver",
         "chat-keyaudit.1": "chat-keyaudit",
         "chat-pushgw.8": "chat-pushgw", "chat-media.8": "chat-media",
         "mosquitto-chat.5": None}


def page(name):
    return os.path.join(SOURCE_DIR, "man", name)


def render(name):
    """The page as plain text, wide and unhyphenated, for searching."""
    r = subprocess.run(["groff", "-man", "-Tascii", "-P-c", "-P-b", "-P-o", "-P-u",
                        "-rLL=300n", "-rHY=0", page(name)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def help_text(prog):
    r = subprocess.run([os.path.join(BUILD_DIR, "bin", prog), "--help"], capture_output=True,
                       text=True, timeout=15)
    assert r.returncode == 0, r.stderr
    return r.stdout + r.stderr


def options_of(text):
    return set(re.findall(r"(?<![\w$/-])(--[a-z][a-z0-9-]*|-[a-z])\b", text))


class ManTest(unittest.TestCase):

    def test_render_without_warnings(self):
        env = dict(os.environ, LC_ALL="C.UTF-8", MANPAGER="cat", PAGER="cat", MANWIDTH="80")
        for name in PAGES:
            with self.subTest(page=name):
                r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", page(name)],
                                   capture_output=True, text=True, timeout=30)
                self.assertEqual((r.returncode, r.stderr), (0, ""))
                r = subprocess.run(["man", "--warnings", "-l", page(name)], capture_output=True,
                                   text=True, timeout=30, env=env)
                self.assertEqual((r.returncode, r.stderr), (0, ""))
                self.assertIn("mosquitto-chat", r.stdout)

    def test_every_program_option_in_its_page(self):
        for name, prog in PAGES.items():
            if not prog:
                continue
            text = render(name)
            opts = options_of(help_text(prog))
            self.assertIn("--version", opts)
            self.assertIn("--cafile", opts)
            for opt in sorted(opts):
                with self.subTest(page=name, option=opt):
                    self.assertTrue(re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(opt), text),
                                    "%s is not in man/%s" % (opt, name))

    def test_every_chatctl_command_in_its_page(self):
        helptext = help_text("chatctl")
        cmds = re.findall(r"^  ([a-z]+(?: [a-z]+)?)\s", helptext.split("Options:")[0], re.M)
        self.assertIn("device add", cmds)
        text = render("chatctl.1")
        for cmd in cmds:
            with self.subTest(command=cmd):
                self.assertTrue(re.search(r"(?m)^\s+%s\b" % re.escape(cmd), text),
                                "%s is not in man/chatctl.1" % cmd)

    def test_every_plugin_option_in_its_page(self):
        with open(os.path.join(SOURCE_DIR, "plugin", "options.c")) as f:
            names = re.findall(r'^\s*\{ "([a-z_]+)", OPT_', f.read(), re.M)
        self.assertGreater(len(names), 10)
        text = render("mosquitto-chat.5")
        for n in names:
            with self.subTest(option=n):
                self.assertTrue(re.search(r"(?m)^\s+plugin_opt_%s\b" % n, text),
                                "plugin_opt_%s is not in man/mosquitto-chat.5" % n)


if __name__ == "__main__":
    main()
