#!/usr/bin/env bash
# WSGI benchmark (issues 7 and 15): each app on keel-pool --http-socket, granian, uWSGI --http11-socket and
# gunicorn, 2 processes × 1 thread each, one wrk run per row on loopback. The apps: the WSGI hello, a Flask
# JSON route and a Flask template page, a Django ORM view (bench/apps; Flask and Django from PyPI into
# bench/.venv). Then nginx → uWSGI vs keel → keel-pool (uwsgi over a unix socket), and the seed's sleep app
# (0.1 s) at 64 connections with --threads 32. See bench/README.md.
#
#   bench/wsgi.sh
#   KEEL=... KEEL_POOL=... bench/wsgi.sh      # prebuilt binaries: no release build
#   ROW_APPS="flask-json django" bench/wsgi.sh # some of: hello flask-json flask-template django
set -euo pipefail

KEEL=${KEEL:-}
KEEL_POOL=${KEEL_POOL:-}
WSGI_BENCH_PACKAGES=${WSGI_BENCH_PACKAGES:-"granian gunicorn flask django"}   # pip installs these into bench/.venv
SLEEP_SECONDS=${SLEEP_SECONDS:-0.1}
OUT_PREFIX="wsgi-"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VENV="$BENCH_DIR/.venv"
APPS="$BENCH_DIR/apps"
EXAMPLE="$ROOT/deploy/examples/wsgi/app.py"   # its / is the same hello; /sleep is the seed's simple_app
UWSGI=/usr/bin/uwsgi
INVOCATION="DURATION=$DURATION CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS WARMUP=$WARMUP SLEEP_SECONDS=$SLEEP_SECONDS bench/wsgi.sh"

install_wsgi_servers() {
    install_tools
    [ -x "$UWSGI" ] && [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || apt_install uwsgi-core uwsgi-plugin-python3
    if [ ! -x "$VENV/bin/granian" ] || [ ! -x "$VENV/bin/gunicorn" ] || ! "$VENV/bin/python" -c "import flask, django" 2>/dev/null; then
        log "pip install $WSGI_BENCH_PACKAGES into $VENV (a venv of $SYS_PYTHON)"
        [ -x "$VENV/bin/python" ] || "$SYS_PYTHON" -m venv "$VENV"
        # shellcheck disable=SC2086
        "$VENV/bin/pip" install --quiet --disable-pip-version-check $WSGI_BENCH_PACKAGES
    fi
}

setup_tmp keel-wsgi

# ROWS: "key|label|rps|p99ms|errors|server CPU µs per request"
measure() {   # measure KEY LABEL URL SID
    local key=$1 label=$2 url=$3 sid=$4 raw="$OUT/${OUT_PREFIX}wrk-$1.txt" before
    warm_up "$label" "$url"
    before=$(session_cpu_ticks "$sid")
    wrk_measured "$label" "$url" "$raw"
    local cpu_us
    cpu_us=$(cpu_us_per_request "$before" "$(session_cpu_ticks "$sid")" "$raw")
    wrk_parse "$raw"
    ROWS+=("$key|$label|$WRK_RPS|$WRK_P99|$WRK_ERRORS|$cpu_us")
    log "$label: $WRK_RPS req/s, p99 $WRK_P99 ms, $WRK_ERRORS errors, server CPU $cpu_us µs/request"
}

serve_and_measure() {   # serve_and_measure KEY LABEL PATH STOP_SIGNAL CMD... (CMD gets PORT substituted)
    local key=$1 label=$2 path=$3 signal=$4 port
    shift 4
    port=$(free_port)
    local -a cmd=("${@//PORT/$port}")
    start "wsgi-$key" "$signal" "${cmd[@]}"
    local sid=$LAST_PID
    if [ "$path" = / ]; then wait_ready "http://127.0.0.1:$port/"; else wait_ready "http://127.0.0.1:$port$path" 200; fi
    measure "$key" "$label" "http://127.0.0.1:$port$path" "$sid"
    stop_servers
}

# app_rows PREFIX NAME PATH MODULE: one app on the four servers, 2 processes × 1 thread each. The hello app
# (PREFIX "") is a file run by Debian's python3; the framework apps are modules of bench/apps using bench/.venv.
app_rows() {
    local p=$1 name=$2 path=$3 module=$4
    local -a keel_app uwsgi_app
    if [ -z "$p" ]; then
        keel_app=(--wsgi-file "$APPS/hello_wsgi.py")
        uwsgi_app=(--wsgi-file "$APPS/hello_wsgi.py")
    else
        keel_app=(--chdir "$APPS" --wsgi "$module" --virtualenv "$VENV")
        uwsgi_app=(--chdir "$APPS" --virtualenv "$VENV" --module "$module")
    fi
    serve_and_measure "${p}K" "${name}keel-pool --http-socket" "$path" TERM \
        "$KEEL_POOL" --http-socket 127.0.0.1:PORT --processes 2 --threads 1 "${keel_app[@]}" --allow-root
    serve_and_measure "${p}G" "${name}granian (wsgi, 2 workers)" "$path" TERM \
        "$VENV/bin/granian" --interface wsgi --host 127.0.0.1 --port PORT --workers 2 --no-ws \
        --log-level warning --working-dir "$APPS" "$module"
    # --http11-socket keeps connections alive, and a worker thread then holds one until it closes:
    # with 2 × 1 threads, 62 of wrk's 64 connections would starve. Connection: close lets them take turns.
    serve_and_measure "${p}U" "${name}uWSGI --http11-socket (Debian 2.0.21)" "$path" INT \
        "$UWSGI" --plugin python3 --master --processes 2 --threads 1 --http11-socket 127.0.0.1:PORT \
        --add-header "Connection: close" "${uwsgi_app[@]}" --disable-logging
    serve_and_measure "${p}N" "${name}gunicorn (sync, 2 workers)" "$path" TERM \
        "$VENV/bin/gunicorn" --workers 2 --bind 127.0.0.1:PORT --chdir "$APPS" --log-level warning "$module"
}

row_nginx_uwsgi() {
    local port sock="$TMP/uwsgi.sock"
    port=$(free_port)
    start wsgi-uwsgi-socket INT "$UWSGI" --plugin python3 --master --processes 2 --threads 1 \
        --socket "$sock" --wsgi-file "$APPS/hello_wsgi.py" --disable-logging
    local sid=$LAST_PID
    start_nginx wsgi-nginx "$port" "$sock"
    wait_ready "http://127.0.0.1:$port/"
    measure NU "nginx → uWSGI (uwsgi, unix)" "http://127.0.0.1:$port/" "$sid"
    stop_servers
}

row_keel_keel_pool() {
    local port sock="$TMP/keel-pool.sock"
    port=$(free_port)
    start wsgi-keel-pool TERM "$KEEL_POOL" --socket "$sock" --processes 2 --threads 1 \
        --wsgi-file "$APPS/hello_wsgi.py" --allow-root
    local sid=$LAST_PID
    start wsgi-keel TERM "$KEEL" --listen "127.0.0.1:$port" --uwsgi "unix:$sock" --access-log off --event-loops 1
    wait_ready "http://127.0.0.1:$port/"
    measure KK "keel → keel-pool (keel wire, unix)" "http://127.0.0.1:$port/" "$sid"
    stop_servers
}

row_sleep_keel() {
    serve_and_measure SK "sleep ${SLEEP_SECONDS}s: keel-pool 2 × 32 threads" "/sleep?s=$SLEEP_SECONDS" TERM \
        "$KEEL_POOL" --http-socket 127.0.0.1:PORT --processes 2 --threads 32 --wsgi-file "$EXAMPLE" --allow-root
}

row_sleep_uwsgi() {
    # --http-socket (one request per connection): the sleep response has no Content-Length, which
    # --http11-socket cannot frame, so there every request waited for wrk's timeout (256 errors).
    serve_and_measure SU "sleep ${SLEEP_SECONDS}s: uWSGI --http-socket 2 × 32 threads" "/sleep?s=$SLEEP_SECONDS" INT \
        "$UWSGI" --plugin python3 --master --processes 2 --threads 32 --http-socket 127.0.0.1:PORT \
        --wsgi-file "$EXAMPLE" --disable-logging
}

ratio() {   # ratio LABEL NUM_KEY DEN_KEY : requests/s ratio
    local n d
    n=$(field "$2" 3) d=$(field "$3" 3)
    [ -n "$n" ] && [ -n "$d" ] || return 0
    awk -v l="$1" -v n="$n" -v d="$d" 'BEGIN { printf "| %s | %.2f× |\n", l, n / d }'
}

report() {
    local r key label rps p99 errors cpu
    echo "| setup | requests/s | p99 (ms) | errors | server CPU µs/request |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for r in ${ROWS[@]+"${ROWS[@]}"}; do
        IFS='|' read -r key label rps p99 errors cpu <<<"$r"
        echo "| $label | $rps | $p99 | $errors | $cpu |"
    done
    echo
    echo "| ratio | requests/s |"
    echo "| --- | ---: |"
    ratio "hello: keel-pool ÷ granian (goal ≥ 1.2)" K G
    ratio "hello: keel-pool ÷ uWSGI --http11-socket" K U
    ratio "hello: keel-pool ÷ gunicorn" K N
    ratio "Flask JSON: keel-pool ÷ granian (goal ≥ 1.1)" FK FG
    ratio "Flask JSON: keel-pool ÷ uWSGI" FK FU
    ratio "Flask JSON: keel-pool ÷ gunicorn" FK FN
    ratio "Flask template: keel-pool ÷ granian" TK TG
    ratio "Flask template: keel-pool ÷ uWSGI" TK TU
    ratio "Flask template: keel-pool ÷ gunicorn" TK TN
    ratio "Django ORM: keel-pool ÷ granian (goal ≥ 1.05)" DK DG
    ratio "Django ORM: keel-pool ÷ uWSGI" DK DU
    ratio "Django ORM: keel-pool ÷ gunicorn" DK DN
    ratio "keel → keel-pool ÷ nginx → uWSGI (the bundle; goal ≥ 1.5)" KK NU
    ratio "sleep app: keel-pool ÷ uWSGI" SK SU
    local ideal
    ideal=$(awk -v c="$CONNECTIONS" -v s="$SLEEP_SECONDS" 'BEGIN { printf "%.0f", c / s }')
    echo
    echo "Sleep rows: $CONNECTIONS connections on 64 threads sleeping ${SLEEP_SECONDS}s can at best make $ideal requests/s."
}

install_wsgi_servers
build_keel
nginx_conf_dir
prepare_out

# The Django app's SQLite file, made once for the run; every server's workers read it.
export DJBENCH_DB="$TMP/djbench.sqlite3"
(cd "$APPS" && "$VENV/bin/python" -m djbench.make_db)

ROW_APPS=${ROW_APPS:-"hello flask-json flask-template django"}
for app in $ROW_APPS; do
    case $app in
        hello) app_rows "" "" / hello_wsgi:application ;;
        flask-json) app_rows F "Flask JSON: " "/users/42?x=1" flask_bench:app ;;
        flask-template) app_rows T "Flask template: " /page flask_bench:app ;;
        django) app_rows D "Django ORM: " /items djbench.wsgi:application ;;
        *) echo "ROW_APPS: unknown app $app (hello, flask-json, flask-template, django)" >&2; exit 2 ;;
    esac
done
row_nginx_uwsgi
row_keel_keel_pool
row_sleep_keel
row_sleep_uwsgi

save_cmds
{
    echo "# Keel bench: WSGI (keel-pool vs granian, uWSGI, gunicorn)"
    echo
    report
    echo
    environment "- keel-pool: $KEEL_POOL" "- keel: $KEEL" "- uWSGI: $($UWSGI --version) (Debian, python3 plugin)" \
        "- granian: $("$VENV/bin/granian" --version 2>&1 | head -1)" "- gunicorn: $("$VENV/bin/gunicorn" --version 2>&1 | head -1)"
} | publish wsgi
echo
report
