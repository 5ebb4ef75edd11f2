#!/usr/bin/env bash
# The HTTP socket's hand-off (issue 15): keel-pool's CPU per WSGI hello request, one worker, when the app runs
# inline on the NIO event loop (--threads 1), when each request crosses event loop → app thread → event loop
# (--threads 4), and on the uwsgi socket's blocking threads behind nginx (1 and 4). Only keel-pool's CPU is
# counted (its session), so nginx's share does not blur the uwsgi rows. See docs/ARCHITECTURE.md.
#
#   bench/handoff.sh
#   KEEL_POOL=.build/release/keel-pool bench/handoff.sh
set -euo pipefail

KEEL=${KEEL:-unused}
KEEL_POOL=${KEEL_POOL:-}
CONNECTIONS=${CONNECTIONS:-16}
OUT_PREFIX="handoff-"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
INVOCATION="DURATION=$DURATION CONNECTIONS=$CONNECTIONS bench/handoff.sh"
APP="$BENCH_DIR/apps/hello_wsgi.py"

install_tools
if [ -z "$KEEL_POOL" ]; then
    release_build "$ROOT/.build-bench" keel-pool KeelPoolWorker
    KEEL_POOL=$BIN_DIR/keel-pool
fi
require_executable KEEL_POOL "$KEEL_POOL"
setup_tmp keel-handoff
nginx_conf_dir
prepare_out

ROWS=()
measure_row() {   # measure_row KEY LABEL URL SID
    local raw="$OUT/${OUT_PREFIX}wrk-$1.txt" before cpu
    warm_up "$2" "$3"
    before=$(session_cpu_ticks "$4")
    wrk_measured "$2" "$3" "$raw"
    cpu=$(cpu_us_per_request "$before" "$(session_cpu_ticks "$4")" "$raw")
    wrk_parse "$raw"
    ROWS+=("$1|$2|$WRK_RPS|$cpu")
    log "$2: $WRK_RPS req/s, keel-pool CPU $cpu µs/request"
}

http_row() {   # http_row KEY THREADS
    local port
    port=$(free_port)
    start "pool-$1" TERM "$KEEL_POOL" --http-socket "127.0.0.1:$port" --processes 1 --threads "$2" \
        --wsgi-file "$APP" --allow-root
    local sid=$LAST_PID
    wait_ready "http://127.0.0.1:$port/"
    measure_row "$1" "--http-socket, 1 × $2 threads" "http://127.0.0.1:$port/" "$sid"
    stop_servers
}

uwsgi_row() {   # uwsgi_row KEY THREADS
    local port sock="$TMP/$1.sock"
    port=$(free_port)
    start "pool-$1" TERM "$KEEL_POOL" --socket "$sock" --processes 1 --threads "$2" --wsgi-file "$APP" --allow-root
    local sid=$LAST_PID
    start_nginx "nginx-$1" "$port" "$sock"
    wait_ready "http://127.0.0.1:$port/"
    measure_row "$1" "--socket (uwsgi) behind nginx, 1 × $2 threads" "http://127.0.0.1:$port/" "$sid"
    stop_servers
}

http_row H1 1
http_row H4 4
uwsgi_row U1 1
uwsgi_row U4 4

report() {
    echo "| keel-pool worker | requests/s | keel-pool CPU µs/request |"
    echo "| --- | ---: | ---: |"
    local row key label rps cpu
    for row in "${ROWS[@]}"; do
        IFS='|' read -r key label rps cpu <<<"$row"
        echo "| $label | $rps | $cpu |"
    done
}
save_cmds
{
    echo "# Keel bench: keel-pool's hand-off"
    echo
    report
    echo
    environment "- keel-pool: $KEEL_POOL"
} | publish handoff
echo
report
