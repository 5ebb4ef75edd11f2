#!/usr/bin/env bash
# Interpreter penalty (issue 15): the same pure-Python workload (bench/apps/pyloop.py, thread CPU time) run by
# an interpreter's own binary and inside a keel-pool worker hosted by that interpreter; for Debian's 3.11 also by
# the embedded libpython3.11 (keel-pool without libKeelPoolWorker.so beside it). Best of RUNS each. Goal: a worker
# within 5 % of the binary. See bench/README.md.
#
#   bench/interp.sh
#   KEEL_POOL=.build/release/keel-pool INTERPRETERS="/usr/bin/python3 ~/.pyenv/versions/3.12.1/bin/python3" bench/interp.sh
set -euo pipefail

KEEL=${KEEL:-unused}
KEEL_POOL=${KEEL_POOL:-}
RUNS=${RUNS:-7}
OUT_PREFIX="interp-"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
INVOCATION="RUNS=$RUNS bench/interp.sh"
APP="$BENCH_DIR/apps/pyloop.py"

default_interpreters() {
    echo /usr/bin/python3
    local newest
    newest=$(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12.* 2>/dev/null | sort -V | tail -n 1)
    [ -n "$newest" ] && echo "$newest/bin/python3"
    return 0
}
INTERPRETERS=${INTERPRETERS:-$(default_interpreters | tr '\n' ' ')}

if [ -z "$KEEL_POOL" ]; then
    release_build "$ROOT/.build-bench" keel-pool KeelPoolWorker
    KEEL_POOL=$BIN_DIR/keel-pool
fi
require_executable KEEL_POOL "$KEEL_POOL"
setup_tmp keel-interp

best() { sort -n | head -n 1; }

binary_ms() {   # binary_ms PYTHON : best of RUNS in the interpreter's own process
    "$1" "$APP" "$RUNS" | best
}

worker_ms() {   # worker_ms KEEL_POOL PYTHON|"" : best of RUNS answers of one worker (GET / runs the workload)
    local pool=$1 python=$2 port i
    port=$(free_port)
    local -a flags=(--http-socket "127.0.0.1:$port" --processes 1 --wsgi-file "$APP" --allow-root)
    [ -n "$python" ] && flags+=(--python "$python")
    start interp-pool TERM "$pool" "${flags[@]}"
    wait_ready "http://127.0.0.1:$port/" 200
    for i in $(seq "$RUNS"); do curl -fsS "http://127.0.0.1:$port/"; done | best
    stop_servers
}

ROWS=()
for python in $INTERPRETERS; do
    version=$("$python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')
    binary=$(binary_ms "$python")
    hosted=$(worker_ms "$KEEL_POOL" "$python")
    ROWS+=("CPython $version, \`$python\`|$binary|$hosted|hosted worker")
    log "$python: binary $binary ms, hosted worker $hosted ms"
    if [ "$python" = /usr/bin/python3 ]; then
        # The embedded fallback: a keel-pool with no worker library beside it.
        mkdir -p "$TMP/embedded"
        cp "$KEEL_POOL" "$TMP/embedded/keel-pool"
        embedded=$(worker_ms "$TMP/embedded/keel-pool" "")
        ROWS+=("CPython $version, \`$python\`|$binary|$embedded|embedded libpython3.11")
        log "$python: embedded worker $embedded ms"
    fi
done

report() {
    echo "| interpreter | its binary (ms) | keel-pool worker (ms) | worker | worker ÷ binary (goal ≤ 1.05) |"
    echo "| --- | ---: | ---: | --- | ---: |"
    local row name binary worker kind
    for row in "${ROWS[@]}"; do
        IFS='|' read -r name binary worker kind <<<"$row"
        awk -v n="$name" -v b="$binary" -v w="$worker" -v k="$kind" \
            'BEGIN { printf "| %s | %.1f | %.1f | %s | %.2f |\n", n, b, w, k, w / b }'
    done
}

prepare_out
{
    echo "# Keel bench: interpreter penalty"
    echo
    report
    echo
    echo "- workload: bench/apps/pyloop.py, best of $RUNS runs, thread CPU time"
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); commit: $(git -C "$ROOT" log -1 --format=%h)"
    echo "- command: \`$INVOCATION\`"
} | publish interp
echo
report
