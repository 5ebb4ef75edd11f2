#!/usr/bin/env bash
# Side-by-side benchmark: keel-pool vs uWSGI, each direct over HTTP and behind the same nginx
# (uwsgi_pass over a unix socket), measured with wrk in one run on loopback. See bench/README.md.
#
#   bench/run.sh                         # all rows
#   ONLY=uwsgi bench/run.sh              # skip keel-pool rows (and the Swift build)
#   ONLY=keel bench/run.sh               # keel-pool rows only
#   DURATION=30s CONNECTIONS=128 bench/run.sh
set -euo pipefail

ONLY=${ONLY:-all}                        # all | keel | uwsgi
UWSGI_SPEC=${UWSGI_SPEC:-uwsgi==2.0.31}  # what pip installs into bench/.venv
KEEL_POOL=${KEEL_POOL:-}                 # a prebuilt keel-pool binary: skips the release build
OUT_PREFIX=""                            # bench/.out/latest.md, wrk-KEY.txt, cmd-NAME.txt

# DURATION (10s), CONNECTIONS (64), WRK_THREADS (2), WARMUP (2s), READY_TIMEOUT (20): in lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="$BENCH_DIR/.venv"
WSGI_APP="$BENCH_DIR/apps/hello_wsgi.py"
INVOCATION="DURATION=$DURATION CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS WARMUP=$WARMUP ONLY=$ONLY${KEEL_POOL:+ KEEL_POOL=$KEEL_POOL} bench/run.sh"

if [ "$#" -gt 0 ]; then
    echo "bench/run.sh takes no arguments; set DURATION, CONNECTIONS, WRK_THREADS, WARMUP, ONLY (all|keel|uwsgi)," >&2
    echo "UWSGI_SPEC, READY_TIMEOUT or KEEL_POOL in the environment instead (see bench/README.md)" >&2
    exit 2
fi
case "$ONLY" in
    all | keel | uwsgi) ;;
    *) echo "ONLY=$ONLY: give all, keel or uwsgi" >&2; exit 2 ;;
esac
want_keel() { [ "$ONLY" != uwsgi ]; }
want_uwsgi() { [ "$ONLY" != keel ]; }

# Tools, servers (start, stop_servers, wait_ready, start_nginx), wrk helpers and the report's
# environment list come from lib.sh.

build_keel_pool() {
    if [ -n "$KEEL_POOL" ]; then
        require_executable KEEL_POOL "$KEEL_POOL"
        return
    fi
    release_build "" keel-pool KeelPoolWorker
    KEEL_POOL="$BIN_DIR/keel-pool"
}

setup_tmp keel-bench

# --- measuring ------------------------------------------------------------------------------

# ROWS: "key|label|rps|p99ms|errors|app-server CPU µs per request"

# measure KEY LABEL URL [APP_SID] : warm up, then one measured wrk run; raw output kept in .out/.
# With APP_SID, also the app server's CPU time per request (its whole session, master and workers):
# the figure that still compares app servers when the proxy in front is the bottleneck.
measure() {
    local key=$1 label=$2 url=$3 sid=${4:-} raw="$OUT/wrk-$1.txt" cpu_before cpu_us="-"
    warm_up "$label" "$url"
    [ -n "$sid" ] && cpu_before=$(session_cpu_ticks "$sid")
    wrk_measured "$label" "$url" "$raw"
    if [ -n "$sid" ]; then
        cpu_us=$(cpu_us_per_request "$cpu_before" "$(session_cpu_ticks "$sid")" "$raw")
    fi
    wrk_parse "$raw"
    ROWS+=("$key|$label|$WRK_RPS|$WRK_P99|$WRK_ERRORS|$cpu_us")
    log "$label: $WRK_RPS req/s, p99 $WRK_P99 ms, $WRK_ERRORS errors, app server CPU $cpu_us µs/request"
}

row_a() {   # keel-pool, direct HTTP
    local port
    port=$(free_port)
    start keel-http TERM "$KEEL_POOL" --http-socket "127.0.0.1:$port" --processes 2 --threads 1 --app hello --allow-root
    local sid=$LAST_PID
    wait_ready "http://127.0.0.1:$port/"
    measure a "keel-pool, HTTP direct" "http://127.0.0.1:$port/" "$sid"
    stop_servers
}

row_d() {   # uWSGI, direct HTTP (the anchor of row a)
    local port
    port=$(free_port)
    # uWSGI's --http-socket has no keep-alive but does not say so: without "Connection: close" wrk
    # counts every request as a read error, then reconnects. (--http11-socket keeps alive, but with
    # 1 thread a worker then serves one connection until it closes: 62 of wrk's 64 starve.)
    # uWSGI takes TERM as "reload"; INT stops it.
    start uwsgi-http INT "$VENV/bin/uwsgi" --master --processes 2 --threads 1 \
        --http-socket "127.0.0.1:$port" --add-header "Connection: close" --wsgi-file "$WSGI_APP" --disable-logging
    local sid=$LAST_PID
    wait_ready "http://127.0.0.1:$port/"
    measure d "uWSGI, HTTP direct" "http://127.0.0.1:$port/" "$sid"
    stop_servers
}

row_b() {   # nginx → keel-pool over uwsgi on a unix socket
    local port sock="$TMP/keel.sock"
    port=$(free_port)
    start keel-uwsgi TERM "$KEEL_POOL" --socket "$sock" --processes 2 --threads 1 --app hello --allow-root
    local sid=$LAST_PID
    start_nginx nginx-keel "$port" "$sock"
    wait_ready "http://127.0.0.1:$port/"
    measure b "nginx → keel-pool (uwsgi, unix)" "http://127.0.0.1:$port/" "$sid"
    stop_servers
}

row_c() {   # nginx → uWSGI over uwsgi on a unix socket
    local port sock="$TMP/uwsgi.sock"
    port=$(free_port)
    start uwsgi-uwsgi INT "$VENV/bin/uwsgi" --master --processes 2 --threads 1 \
        --socket "$sock" --wsgi-file "$WSGI_APP" --disable-logging
    local sid=$LAST_PID
    start_nginx nginx-uwsgi "$port" "$sock"
    wait_ready "http://127.0.0.1:$port/"
    measure c "nginx → uWSGI (uwsgi, unix)" "http://127.0.0.1:$port/" "$sid"
    stop_servers
}

# --- 5. report ------------------------------------------------------------------------------

ratio_line() {   # ratio_line LABEL NUM_KEY DEN_KEY
    local nr dr np dp nc dc
    nr=$(field "$2" 3) dr=$(field "$3" 3) np=$(field "$2" 4) dp=$(field "$3" 4) nc=$(field "$2" 6) dc=$(field "$3" 6)
    [ -n "$nr" ] && [ -n "$dr" ] || return 0
    # CPU is inverted (uWSGI's µs / keel-pool's µs) so that, like rps, higher means keel-pool is better.
    awk -v l="$1" -v nr="$nr" -v dr="$dr" -v np="$np" -v dp="$dp" -v nc="$nc" -v dc="$dc" \
        'BEGIN { printf "| %s | %.2f× | %.2f× | %s |\n", l, nr / dr, (dp > 0 ? np / dp : 0),
                 (nc + 0 > 0 && dc + 0 > 0 ? sprintf("%.2f×", dc / nc) : "-") }'
}

report() {
    local r key label rps p99 errors cpu
    echo "| setup | requests/s | p99 (ms) | errors | app server CPU µs/request |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for r in ${ROWS[@]+"${ROWS[@]}"}; do
        IFS='|' read -r key label rps p99 errors cpu <<<"$r"
        echo "| $label | $rps | $p99 | $errors | $cpu |"
    done
    if { [ -n "$(field b 3)" ] && [ -n "$(field c 3)" ]; } || { [ -n "$(field a 3)" ] && [ -n "$(field d 3)" ]; }; then
        echo
        echo "| ratio (keel-pool / uWSGI) | requests/s (higher is better) | p99 (lower is better) | requests per CPU-second (higher is better) |"
        echo "| --- | ---: | ---: | ---: |"
        ratio_line "keel-pool vs uWSGI behind nginx" b c
        ratio_line "keel-pool vs uWSGI, HTTP direct" a d
    fi
}

run_environment() {
    local -a extra=()
    if want_uwsgi; then extra+=("- uWSGI: $("$VENV/bin/uwsgi" --version) ($UWSGI_SPEC, $("$VENV/bin/python" -V))"); fi
    if want_keel; then extra+=("- keel-pool: $KEEL_POOL"); fi
    environment ${extra[@]+"${extra[@]}"}
}

# --- main -----------------------------------------------------------------------------------

if want_uwsgi; then install_tools uwsgi; else install_tools; fi
if want_keel; then build_keel_pool; fi
nginx_conf_dir
prepare_out

if want_keel; then row_a; fi
if want_uwsgi; then row_d; fi
if want_keel; then row_b; fi
if want_uwsgi; then row_c; fi

save_cmds

{
    echo "# Keel bench: keel-pool vs uWSGI"
    echo
    report
    echo
    run_environment
} | publish ""

echo
report
echo
echo "Written to bench/.out/latest.md (raw wrk output: bench/.out/wrk-*.txt)"
