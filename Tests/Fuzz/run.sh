#!/usr/bin/env bash
# Fuzzes the two parsers that read another process's bytes (UWSGIResponseParser: what a uwsgi server answers;
# UWSGIRequestParser: what a front sends) with libFuzzer and AddressSanitizer, each for a bounded time, from the
# committed seed corpus (new inputs go to a scratch copy, so the tree stays clean).
#
#   Tests/Fuzz/run.sh                 # 60 s per target
#   SECONDS_PER_TARGET=600 Tests/Fuzz/run.sh
#   RUNS=10000000 Tests/Fuzz/run.sh   # a fixed number of executions per target instead (no time bound but 3 h)
#
# Prints each target's executions and a summary line (a crash is a failure; its input is kept in
# bench/.out/fuzz/ and named in the output). Exit code 0 only when no target crashed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."

SECONDS_PER_TARGET=${SECONDS_PER_TARGET:-60}
RUNS=${RUNS:-}
TARGETS=(UWSGIResponseParserFuzz UWSGIRequestParserFuzz)
SCRATCH=.build-fuzz
OUT=bench/.out/fuzz
mkdir -p "$OUT"

# KEEL_FUZZ=1 adds the fuzz targets to Package.swift (with -sanitize=fuzzer,address); a scratch path of their own.
for target in "${TARGETS[@]}"; do
    if ! KEEL_FUZZ=1 swift build -c release --scratch-path "$SCRATCH" --product "$target" >"$OUT/build-$target.log" 2>&1; then
        echo "Tests/Fuzz/run.sh: building $target with -sanitize=fuzzer,address failed; see $OUT/build-$target.log" >&2
        tail -5 "$OUT/build-$target.log" >&2
        exit 1
    fi
done

passed=0
failed=0
for target in "${TARGETS[@]}"; do
    corpus=$(mktemp -d /tmp/keel-fuzz-XXXXXX)
    cp Tests/Fuzz/corpus/"$target"/* "$corpus"/
    limit=(-max_total_time="$SECONDS_PER_TARGET")
    [ -n "$RUNS" ] && limit=(-runs="$RUNS" -max_total_time=10800)
    log="$OUT/$target.log"
    # Swift's own backtracer would read memory ASan guards; libFuzzer prints the trace instead.
    if SWIFT_BACKTRACE=enable=no "$SCRATCH/release/$target" "${limit[@]}" -max_len=4096 -rss_limit_mb=4096 \
        -artifact_prefix="$OUT/$target-" -print_final_stats=1 "$corpus" >"$log" 2>&1; then
        passed=$((passed + 1))
        result="no crash"
    else
        failed=$((failed + 1))
        result="CRASH: $(grep -m1 -E 'runtime failure|ERROR:' "$log" || true); input: $(ls -t "$OUT"/"$target"-* 2>/dev/null | head -1)"
    fi
    runs=$(grep -m1 -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "$target: ${runs:-?} executions, $result (log: $log)"
    rm -rf "$corpus"
done
echo "fuzz: $passed targets without a crash, $failed crashed"
[ "$failed" -eq 0 ]
