#!/usr/bin/env bash
# test.sh - installs what is missing, builds, and runs every test suite:
#   build-test/  warnings as errors: unit, sim, fuzz (corpus replay), integration
#   build-asan/  AddressSanitizer + UndefinedBehaviorSanitizer: unit, sim, fuzz
#   build-fuzz/  clang libFuzzer targets, each fuzzed for FUZZ_SECONDS (default 20)
# and closes with "N passed, N failed" counted over all of them. Exits non-zero
# on any failure. A skipped test (exit 77) is reported, never counted as passed.
set -uo pipefail
cd "$(dirname "$0")/.."

passed=0 failed=0 skipped=0

tools/install-deps.sh test || { echo "0 passed, 1 failed"; exit 1; }

# count BUILD_DIR: adds the results of the last meson test run in BUILD_DIR.
count() {
    local log="$1/meson-logs/testlog.json"
    if [ ! -f "$log" ]; then
        failed=$((failed + 1))
        return
    fi
    read -r p f s < <(python3 - "$log" <<'PY'
import json, sys
p = f = s = 0
for line in open(sys.argv[1]):
    line = line.strip()
    if not line:
        continue
    r = json.loads(line).get("result")
    if r == "OK":
        p += 1
    elif r == "SKIP":
        s += 1
    else:
        f += 1
print(p, f, s)
PY
)
    passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
}

# suite BUILD_DIR "SETUP ARGS" SUITE...: configure, build, test, count.
suite() {
    local dir="$1" setup="$2"
    shift 2
    echo "=== $dir: suites $*"
    if [ ! -f "$dir/build.ninja" ]; then
        # shellcheck disable=SC2086
        if ! meson setup "$dir" $setup >"$dir.setup.log" 2>&1; then
            cat "$dir.setup.log"
            echo "$dir: configure failed"
            failed=$((failed + 1))
            return
        fi
    fi
    if ! ninja -C "$dir" >"$dir.build.log" 2>&1; then
        tail -50 "$dir.build.log"
        echo "$dir: build failed"
        failed=$((failed + 1))
        return
    fi
    rm -f "$dir/meson-logs/testlog.json"
    local args=()
    for s in "$@"; do args+=(--suite "$s"); done
    meson test -C "$dir" --print-errorlogs --num-processes 2 "${args[@]}"
    count "$dir"
}

suite build-test "--werror --buildtype=debugoptimized" unit sim fuzz integration
suite build-asan "--werror --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false" \
    unit sim fuzz
CC=clang suite build-fuzz "--buildtype=debugoptimized -Db_sanitize=address,undefined \
    -Db_lundef=false -Dfuzz=true -Dfuzz_seconds=${FUZZ_SECONDS:-20}" fuzzing

echo
if [ "$skipped" -gt 0 ]; then
    echo "($skipped skipped, not counted as passed)"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
