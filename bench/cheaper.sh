#!/usr/bin/env bash
# Issue 17's adaptive-worker scenario: a step load (IDLE s idle, LOAD of wrk with 64 connections on the WSGI demo's
# /sleep?s=0.05, then IDLE2 s idle) against keel-pool with a fixed --processes 4 and with --cheaper 1 --processes 4.
# Reports requests, errors, p99 (wrk --latency) and the average workers alive (sampled every 0.5 s from /proc) over
# the whole step and during the load. Loopback only; every process started is stopped on exit.
#
#   bench/cheaper.sh                              # busyness
#   ALGO=backlog bench/cheaper.sh
#   KEEL_POOL=$PWD/.build/release/keel-pool bench/cheaper.sh   # skip the build
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
IDLE=${IDLE:-5}
LOAD=${LOAD:-20s}
IDLE2=${IDLE2:-15}
THREADS=${THREADS:-4}
ALGO=${ALGO:-busyness}
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [ -z "${KEEL_POOL:-}" ]; then
    swift build -c release --product keel-pool >&2
    KEEL_POOL="$(swift build -c release --show-bin-path)/keel-pool"
fi
TMP=$(mktemp -d /tmp/keel-cheaper.XXXXXX)
PIDS=()
cleanup() {
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill -KILL "$pid" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

workers_of() { pgrep -P "$1" | wc -l; }

run() {   # run LABEL FLAGS... : one step load; prints a result row
    local label=$1; shift
    "$KEEL_POOL" --http-socket "127.0.0.1:$PORT" --wsgi-file deploy/examples/wsgi/app.py --threads "$THREADS" \
        --processes 4 --allow-root "$@" >"$TMP/$label.log" 2>&1 &
    local pool=$!
    PIDS+=("$pool")
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.2; done
    : >"$TMP/$label.samples"
    ( while kill -0 "$pool" 2>/dev/null; do echo "$(date +%s.%N) $(workers_of "$pool")" >>"$TMP/$label.samples"; sleep 0.5; done ) &
    local sampler=$!
    PIDS+=("$sampler")
    sleep "$IDLE"
    local load_start load_end
    load_start=$(date +%s.%N)
    wrk -t2 -c64 -d"$LOAD" --latency "http://127.0.0.1:$PORT/sleep?s=0.05" >"$TMP/$label.wrk"
    load_end=$(date +%s.%N)
    sleep "$IDLE2"
    kill "$sampler" 2>/dev/null || true
    kill -TERM "$pool"; wait "$pool" 2>/dev/null || true
    local requests p99 errors all during
    requests=$(awk '/requests in/ {print $1}' "$TMP/$label.wrk")
    p99=$(awk '$1 == "99%" {print $2}' "$TMP/$label.wrk")
    errors=$(awk '/Socket errors|Non-2xx/ {printf "%s ", $0}' "$TMP/$label.wrk")
    all=$(awk '{s += $2; n++} END {printf "%.2f", s / n}' "$TMP/$label.samples")
    during=$(awk -v a="$load_start" -v b="$load_end" '$1 >= a && $1 <= b {s += $2; n++} END {printf "%.2f", s / n}' "$TMP/$label.samples")
    printf '%-28s requests %6s  p99 %8s  workers avg %s (during load %s)  %s\n' "$label" "$requests" "$p99" "$all" "$during" "${errors:-0 errors}"
    grep -c "cheaper (" "$TMP/$label.log" | sed 's/^/    cheaper decisions logged: /' >&2 || true
}

echo "step load: ${IDLE}s idle, wrk -c64 -d$LOAD on /sleep?s=0.05 (--threads $THREADS), ${IDLE2}s idle; $(date -u +%FT%TZ), $(git rev-parse --short HEAD)"
run "fixed --processes 4"
run "--cheaper 1 ($ALGO)" --cheaper 1 --cheaper-algo "$ALGO" --cheaper-overload 1 --cheaper-busyness-multiplier 3
