#!/bin/sh
# run-fuzzer.sh FUZZER CORPUS DICT SECONDS - fuzzes for a bounded time on a
# scratch copy of the committed corpus (new inputs are not written back).
# A crash, a leak or a timeout exits 1: libFuzzer's own 77 and 70 would read as
# "skipped" to meson.
set -eu
fuzzer=$1 corpus=$2 dict=$3 seconds=$4
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r "$corpus"/. "$work"/
dict_arg=""
[ -f "$dict" ] && dict_arg="-dict=$dict"
exec "$fuzzer" $dict_arg -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -error_exitcode=1 -timeout_exitcode=1 \
    -print_final_stats=1 -artifact_prefix="${PRESENCED_BUILD_DIR:-.}/fuzz-crash-" "$work"
