#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# Runs the walkthrough in order against the broker in the environment (see
# lib.sh; defaults fit `make run`). Stops at the first script that fails.
set -euo pipefail
here=$(dirname "$0")
for s in "$here"/[0-9][0-9]-*.sh; do
  printf '\n\033[1;34m=== %s\033[0m\n' "$(basename "$s")"
  bash "$s"
done
echo
echo "walkthrough: all scripts passed"
