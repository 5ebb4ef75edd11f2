#!/usr/bin/env bash
# Async benchmark (issue 16): ASGI apps on keel-pool --asgi, granian --interface asgi and uvicorn (uvloop +
# httptools), 2 workers each; the async sleep app at 2,000 connections; the seed's sleep app under gevent on
# keel-pool --gevent and gunicorn -k gevent; WebSocket echo messages/s through keel and through nginx to the same
# keel-pool. Packages from PyPI into bench/.venv. See bench/README.md.
#
#   bench/asgi.sh
#   KEEL=... KEEL_POOL=... bench/asgi.sh            # prebuilt binaries: no release build
#   ROWS_ONLY="hello fastapi sleep gevent ws" bench/asgi.sh
set -euo pipefail

KEEL=${KEEL:-}
KEEL_POOL=${KEEL_POOL:-}
ASGI_BENCH_PACKAGES=${ASGI_BENCH_PACKAGES:-"granian gunicorn uvicorn httptools uvloop fastapi gevent websockets packaging"}
SLEEP_SECONDS=${SLEEP_SECONDS:-0.1}
SLEEP_CONNECTIONS=${SLEEP_CONNECTIONS:-2000}
WS_CONNECTIONS=${WS_CONNECTIONS:-50}
OUT_PREFIX="asgi-"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="$BENCH_DIR/.venv"
APPS="$BENCH_DIR/apps"
EXAMPLE_DIR="$ROOT/deploy/examples/wsgi"   # app.py's /sleep is the seed's simple_app (time.sleep)
INVOCATION="DURATION=$DURATION CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS WARMUP=$WARMUP SLEEP_CONNECTIONS=$SLEEP_CONNECTIONS WS_CONNECTIONS=$WS_CONNECTIONS bench/asgi.sh"
EXPECTED_BODY=$'Hello world!\n'

install_servers() {
    install_tools
    if ! "$VENV/bin/python" -c "import granian, uvicorn, httptools, uvloop, fastapi, gevent, websockets, gunicorn, packaging" 2>/dev/null
    then
        log "pip install $ASGI_BENCH_PACKAGES into $VENV (a venv of $SYS_PYTHON)"
        [ -x "$VENV/bin/python" ] || "$SYS_PYTHON" -m venv "$VENV"
        # shellcheck disable=SC2086
        "$VENV/bin/pip" install --quiet --disable-pip-version-check $ASGI_BENCH_PACKAGES
    fi
}

setup_tmp keel-asgi

# Resident memory of a server's workers (every process in its session but the first), in MiB.
workers_rss_mib() {   # workers_rss_mib SID
    local sid=$1 total=0 pid kib
    for pid in $(ps -o pid= -s "$sid" 2>/dev/null); do
        [ "$pid" = "$sid" ] && continue
        kib=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
        total=$((total + ${kib:-0}))
    done
    awk -v k="$total" 'BEGIN { printf "%.0f", k / 1024 }'
}

# ROWS: "key|label|rps|p99ms|errors|server CPU µs per request|workers' RSS MiB"
measure() {   # measure KEY LABEL URL SID
    local key=$1 label=$2 url=$3 sid=$4 raw="$OUT/${OUT_PREFIX}wrk-$1.txt" before
    warm_up "$label" "$url"
    before=$(session_cpu_ticks "$sid")
    wrk_measured "$label" "$url" "$raw"
    local cpu_us rss
    cpu_us=$(cpu_us_per_request "$before" "$(session_cpu_ticks "$sid")" "$raw")
    rss=$(workers_rss_mib "$sid")
    wrk_parse "$raw"
    ROWS+=("$key|$label|$WRK_RPS|$WRK_P99|$WRK_ERRORS|$cpu_us|$rss")
    log "$label: $WRK_RPS req/s, p99 $WRK_P99 ms, $WRK_ERRORS errors, server CPU $cpu_us µs/request, workers $rss MiB"
}

serve_and_measure() {   # serve_and_measure KEY LABEL PATH READY STOP_SIGNAL CMD... (PORT substituted)
    local key=$1 label=$2 path=$3 ready=$4 signal=$5 port
    shift 5
    port=$(free_port)
    local -a cmd=("${@//PORT/$port}")
    start "asgi-$key" "$signal" "${cmd[@]}"
    local sid=$LAST_PID
    wait_ready "http://127.0.0.1:$port$ready" 200
    measure "$key" "$label" "http://127.0.0.1:$port$path" "$sid"
    stop_servers
}

# app_rows P NAME PATH KEEL_MODULE: one ASGI app on keel-pool, granian and uvicorn, 2 workers each.
app_rows() {
    local p=$1 name=$2 path=$3 module=$4
    serve_and_measure "${p}K" "${name}keel-pool --asgi" "$path" "$path" TERM \
        "$KEEL_POOL" --http-socket 127.0.0.1:PORT --processes 2 --chdir "$APPS" --virtualenv "$VENV" \
        --asgi "$module" --allow-root
    serve_and_measure "${p}G" "${name}granian --interface asgi" "$path" "$path" TERM \
        "$VENV/bin/granian" --interface asgi --host 127.0.0.1 --port PORT --workers 2 --no-ws \
        --log-level warning --working-dir "$APPS" "$module"
    serve_and_measure "${p}V" "${name}uvicorn (uvloop, httptools)" "$path" "$path" TERM \
        "$VENV/bin/uvicorn" --host 127.0.0.1 --port PORT --workers 2 --loop uvloop --http httptools \
        --log-level warning --no-access-log --app-dir "$APPS" "$module"
}

# The sleep rows run at SLEEP_CONNECTIONS connections: each needs a descriptor in wrk and in the server.
sleep_rows() {
    local saved=$CONNECTIONS path="/sleep?s=$SLEEP_SECONDS"
    ulimit -n 65536 2>/dev/null || true
    CONNECTIONS=$SLEEP_CONNECTIONS
    serve_and_measure SK "async sleep ${SLEEP_SECONDS}s: keel-pool --asgi --worker-connections 1000" "$path" "$path" TERM \
        "$KEEL_POOL" --http-socket 127.0.0.1:PORT --processes 2 --worker-connections 1000 --listen 4096 \
        --chdir "$APPS" --virtualenv "$VENV" --asgi sleep_asgi:app --allow-root
    serve_and_measure SG "async sleep ${SLEEP_SECONDS}s: granian --interface asgi" "$path" "$path" TERM \
        "$VENV/bin/granian" --interface asgi --host 127.0.0.1 --port PORT --workers 2 --no-ws --backlog 4096 \
        --log-level warning --working-dir "$APPS" sleep_asgi:app
    serve_and_measure SV "async sleep ${SLEEP_SECONDS}s: uvicorn (uvloop, httptools)" "$path" "$path" TERM \
        "$VENV/bin/uvicorn" --host 127.0.0.1 --port PORT --workers 2 --loop uvloop --http httptools --backlog 4096 \
        --log-level warning --no-access-log --app-dir "$APPS" sleep_asgi:app
    CONNECTIONS=$saved
}

gevent_rows() {
    local saved=$CONNECTIONS path="/sleep?s=$SLEEP_SECONDS"
    ulimit -n 65536 2>/dev/null || true
    CONNECTIONS=$SLEEP_CONNECTIONS
    serve_and_measure EK "gevent sleep ${SLEEP_SECONDS}s: keel-pool --gevent 1000" "$path" / TERM \
        "$KEEL_POOL" --http-socket 127.0.0.1:PORT --processes 2 --gevent 1000 --listen 4096 \
        --chdir "$EXAMPLE_DIR" --virtualenv "$VENV" --wsgi app:application --allow-root
    serve_and_measure EN "gevent sleep ${SLEEP_SECONDS}s: gunicorn -k gevent --worker-connections 1000" "$path" / TERM \
        "$VENV/bin/gunicorn" --workers 2 --worker-class gevent --worker-connections 1000 --backlog 4096 \
        --bind 127.0.0.1:PORT --chdir "$EXAMPLE_DIR" --log-level warning app:application
    CONNECTIONS=$saved
}

# WebSocket echo: keel-pool (ASGI echo) behind keel (uwsgi and HTTP) and behind nginx (proxy_pass with the upgrade
# headers), the same client (bench/apps/ws_load.py) for each.
ws_measure() {   # ws_measure KEY LABEL URI
    local key=$1 label=$2 uri=$3 rate
    "$VENV/bin/python" "$APPS/ws_load.py" "$uri" "$WS_CONNECTIONS" 2 >/dev/null   # warm-up
    rate=$("$VENV/bin/python" "$APPS/ws_load.py" "$uri" "$WS_CONNECTIONS" "${DURATION%s}")
    ROWS+=("$key|$label|$rate|-|-|-|-")
    log "$label: $rate messages/s"
}

ws_rows() {
    local pool_port keel_port keel_http_port nginx_port sock="$TMP/ws.sock"
    pool_port=$(free_port)
    start asgi-ws-pool TERM "$KEEL_POOL" --http-socket "127.0.0.1:$pool_port" --socket "$sock" --processes 2 \
        --chdir "$APPS" --virtualenv "$VENV" --asgi ws_echo_asgi:app --allow-root
    wait_ready "http://127.0.0.1:$pool_port/"
    ws_measure WD "WebSocket echo: direct to keel-pool --http-socket" "ws://127.0.0.1:$pool_port/"
    keel_port=$(free_port)
    start asgi-ws-keel TERM "$KEEL" --listen "127.0.0.1:$keel_port" --uwsgi "unix:$sock" --access-log off --event-loops 1
    wait_ready "http://127.0.0.1:$keel_port/"
    ws_measure WK "WebSocket echo: keel → keel-pool (uwsgi tunnel)" "ws://127.0.0.1:$keel_port/"
    keel_http_port=$(free_port)
    start asgi-ws-keel-http TERM "$KEEL" --listen "127.0.0.1:$keel_http_port" --proxy "127.0.0.1:$pool_port" \
        --access-log off --event-loops 1
    wait_ready "http://127.0.0.1:$keel_http_port/"
    ws_measure WH "WebSocket echo: keel → keel-pool (HTTP tunnel)" "ws://127.0.0.1:$keel_http_port/"
    nginx_port=$(free_port)
    start_nginx_with asgi-ws-nginx "$nginx_port" "" "            proxy_pass http://127.0.0.1:$pool_port;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \"upgrade\";
            proxy_read_timeout 600s;"
    wait_ready "http://127.0.0.1:$nginx_port/"
    ws_measure WN "WebSocket echo: nginx → keel-pool (proxy_pass, upgrade)" "ws://127.0.0.1:$nginx_port/"
    stop_servers
}

ratio() {   # ratio LABEL NUM_KEY DEN_KEY
    local n d
    n=$(field "$2" 3) d=$(field "$3" 3)
    [ -n "$n" ] && [ -n "$d" ] && [ "$d" != 0 ] || return 0
    awk -v l="$1" -v n="$n" -v d="$d" 'BEGIN { printf "| %s | %.2f× |\n", l, n / d }'
}

report() {
    local r key label rps p99 errors cpu rss
    echo "| setup | requests/s (messages/s for WebSocket rows) | p99 (ms) | errors | server CPU µs/request | workers' RSS MiB |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for r in ${ROWS[@]+"${ROWS[@]}"}; do
        IFS='|' read -r key label rps p99 errors cpu rss <<<"$r"
        echo "| $label | $rps | $p99 | $errors | $cpu | $rss |"
    done
    echo
    echo "| ratio | value |"
    echo "| --- | ---: |"
    ratio "ASGI hello: keel-pool ÷ granian (goal ≥ 1.2)" K G
    ratio "ASGI hello: keel-pool ÷ uvicorn (goal ≥ 2)" K V
    ratio "FastAPI JSON: keel-pool ÷ granian" FK FG
    ratio "FastAPI JSON: keel-pool ÷ uvicorn" FK FV
    local ideal
    ideal=$(awk -v c="$SLEEP_CONNECTIONS" -v s="$SLEEP_SECONDS" 'BEGIN { printf "%.0f", c / s }')
    local sk
    sk=$(field SK 3)
    [ -n "$sk" ] && awk -v n="$sk" -v i="$ideal" 'BEGIN { printf "| async sleep: keel-pool ÷ the ideal %d req/s (goal ≥ 0.95) | %.2f |\n", i, n / i }'
    ratio "async sleep: keel-pool ÷ granian" SK SG
    ratio "async sleep: keel-pool ÷ uvicorn" SK SV
    ratio "gevent sleep: keel-pool ÷ gunicorn -k gevent" EK EN
    ratio "WebSocket echo: through keel (uwsgi) ÷ through nginx" WK WN
    ratio "WebSocket echo: through keel (HTTP) ÷ through nginx" WH WN
    echo
    echo "Sleep rows: $SLEEP_CONNECTIONS connections, each request sleeping ${SLEEP_SECONDS}s, can at best make $ideal requests/s."
}

install_servers
build_keel
nginx_conf_dir
prepare_out

ROWS_ONLY=${ROWS_ONLY:-"hello fastapi sleep gevent ws"}
for row in $ROWS_ONLY; do
    case $row in
        hello) app_rows "" "" / hello_asgi:app ;;
        fastapi) app_rows F "FastAPI JSON: " "/items/42?q=x" fastapi_bench:app ;;
        sleep) sleep_rows ;;
        gevent) gevent_rows ;;
        ws) ws_rows ;;
        *) echo "ROWS_ONLY: unknown row $row (hello fastapi sleep gevent ws)" >&2; exit 2 ;;
    esac
done

save_cmds
{
    echo "# Keel bench: async workers (ASGI, gevent, WebSockets)"
    echo
    report
    echo
    environment "- keel-pool: $KEEL_POOL" "- keel: $KEEL" \
        "- granian: $("$VENV/bin/granian" --version 2>&1 | head -1)" \
        "- uvicorn: $("$VENV/bin/uvicorn" --version 2>&1 | head -1)" \
        "- gunicorn: $("$VENV/bin/gunicorn" --version 2>&1 | head -1)"
} | publish asgi
echo
report
