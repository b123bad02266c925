#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# Runs mosquitto's own broker test suite (test/broker of the Debian source,
# 195 tests, ~3 minutes) against a build made by build.sh, and prints its
# summary (Passed / Failed / Total). docs/BROKER-PATCHES.md records the
# counts of the stock and the patched build side by side.
#
#   broker-patches/run-mosquitto-tests.sh [--stock] [BUILD_DIR]
#
# Needs python3, python3-psutil, openssl, libcjson-dev (the dynamic-security
# plugin its 14-dynsec tests load) and a C compiler with libmosquitto-dev
# (the suite's test plugins and TLS-PSK clients): `scripts/deps.sh
# mosquitto-tests` installs what the default set lacks. The
# suite listens on the fixed ports 1888-1909, so one run at a time.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
flag=()
kind=patched
if [ "${1:-}" = "--stock" ]; then
  kind=stock
  flag=(--stock)
  shift
fi
build=${1:-build}
out=$build/mosquitto-$kind
[ -x "$out/mosquitto" ] || "$here/build.sh" "${flag[@]}" "$build"
out=$(cd "$out" && pwd)
tree=$out/tree

# As root the broker drops to the `mosquitto` user: it must be able to
# read the test configs and certificates and write its files there.
umask 000
chmod -R a+rwX "$tree/test"
# test.py runs each test as an executable; Debian's source ships a few
# without the x bit (01-connect-575314.py).
chmod a+x "$tree"/test/broker/[0-9]*.py
make -s -C "$tree/test" ssl > "$out/test-ssl.log" 2>&1
make -s -C "$tree/test/broker" test-compile > "$out/test-compile.log" 2>&1
# The 14-dynsec-* tests load the dynamic-security plugin of this tree.
make -s -C "$tree/plugins/dynamic-security" WITH_DOCS=no >> "$out/test-compile.log" 2>&1
chmod -R a+rwX "$tree/test"

echo "mosquitto test/broker against $out/mosquitto" >&2
cd "$tree/test/broker"
# The scripts start with `#!/usr/bin/env python3`: Debian's, whatever else
# is first on PATH (python3-psutil is installed for that one).
PATH=/usr/bin:$PATH MOSQ_TEST_BROKER=$out/mosquitto /usr/bin/python3 ./test.py
