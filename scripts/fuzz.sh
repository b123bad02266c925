#!/usr/bin/env bash
# SPDX-FileCopyrightText: 2026 The mosquitto-chat authors
# SPDX-License-Identifier: EPL-2.0 OR BSD-3-Clause
# Runs the libFuzzer targets built in build-fuzz/ (make fuzz, make fuzz-smoke;
# docs/FUZZING.md).
#
#   scripts/fuzz.sh run   [target...]   each target FUZZ_SECONDS (default 60)
#   scripts/fuzz.sh smoke [target...]   replay tests/fuzz/corpus/<t> and
#                                       tests/fuzz/regressions/<t>, then fuzz
#                                       each target FUZZ_SECONDS (default 5)
#
# Targets default to every build-fuzz/bin/fuzz_*. Each run starts from a
# temporary copy of the committed corpus (which stays as it is), under nice,
# with a memory limit; the targets' data dirs go to a temporary TMPDIR that
# is removed afterwards. A crash is kept in build-fuzz/artifacts/<t>/ and
# fails the script; minimise it and add it to tests/fuzz/regressions/<t>/.
#
# Environment: FUZZ_SECONDS, FUZZ_BUILD (build-fuzz), FUZZ_NICE (10),
# FUZZ_FLAGS (more libFuzzer flags, e.g. -jobs=2 or -fork=1).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=${1:-run}
shift || true
case "$mode" in
  run) seconds=${FUZZ_SECONDS:-60} ;;
  smoke) seconds=${FUZZ_SECONDS:-5} ;;
  *) echo "usage: $0 run|smoke [target...]" >&2; exit 2 ;;
esac
build=${FUZZ_BUILD:-build-fuzz}
nice_n=${FUZZ_NICE:-10}
src=tests/fuzz

targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for exe in "$build"/bin/fuzz_*; do
    [ -x "$exe" ] && targets+=("${exe##*/fuzz_}")
  done
fi
[ ${#targets[@]} -gt 0 ] || { echo "fuzz: no targets in $build/bin (make fuzz builds them)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/chat-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
export TMPDIR="$work/tmp"
mkdir -p "$TMPDIR"

failed=()
summary=()
for t in "${targets[@]}"; do
  exe="$build/bin/fuzz_$t"
  [ -x "$exe" ] || { echo "fuzz: $exe is not built" >&2; failed+=("$t"); continue; }
  art="$build/artifacts/$t"
  mkdir -p "$art"
  flags=(-rss_limit_mb=2048 -timeout=30 -artifact_prefix="$art/" -print_final_stats=1)
  [ -f "$src/chat.dict" ] && flags+=(-dict="$src/chat.dict")
  log="$work/$t.log"

  if [ "$mode" = smoke ]; then
    # Every committed input once: the seeds and the crashes fixed so far.
    inputs=()
    for d in "$src/corpus/$t" "$src/regressions/$t"; do
      [ -d "$d" ] && while IFS= read -r -d '' f; do inputs+=("$f"); done \
        < <(find "$d" -type f -print0 | sort -z)
    done
    if [ ${#inputs[@]} -gt 0 ] &&
       ! nice -n "$nice_n" "$exe" "${flags[@]}" "${inputs[@]}" > "$log" 2>&1; then
      echo "fuzz: $t: a committed input fails:" >&2
      grep -E 'Running:|ERROR|SUMMARY|harness|violation|broken|^    #' "$log" | head -40 >&2
      failed+=("$t")
      continue
    fi
  fi

  corpus="$work/corpus-$t"
  mkdir -p "$corpus"
  [ -d "$src/corpus/$t" ] && cp "$src/corpus/$t"/* "$corpus"/ 2>/dev/null || true
  # shellcheck disable=SC2086
  if nice -n "$nice_n" "$exe" "${flags[@]}" -max_total_time="$seconds" ${FUZZ_FLAGS:-} \
       "$corpus" > "$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$t")
    echo "fuzz: $t failed; crash input in $art/:" >&2
    grep -E 'ERROR|SUMMARY|harness|violation|broken|Test unit written|^    #' "$log" | head -40 >&2
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  # -fork prints no final stats: its last "#N:" status line has the count
  [ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9][0-9]*\):.*/\1/p' "$log" | tail -1)
  summary+=("$(printf '%-14s %-6s %12s execs in %ss' "$t" "$status" "${runs:-?}" "$seconds")")
done

printf 'fuzz %s:\n' "$mode"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
