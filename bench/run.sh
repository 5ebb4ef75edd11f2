#!/usr/bin/env bash
# Side-by-side benchmark: keel-pool vs uWSGI, each direct over HTTP and behind the same nginx
# (uwsgi_pass over a unix socket), measured with wrk in one run on loopback. See bench/README.md.
#
#   bench/run.sh                         # all rows
#   ONLY=uwsgi bench/run.sh              # skip keel-pool rows (and the Swift build)
#   ONLY=keel bench/run.sh               # keel-pool rows only
#   DURATION=30s CONNECTIONS=128 bench/run.sh
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
WARMUP=${WARMUP:-2s}
ONLY=${ONLY:-all}                        # all | keel | uwsgi
UWSGI_SPEC=${UWSGI_SPEC:-uwsgi==2.0.31}  # what pip installs into bench/.venv
READY_TIMEOUT=${READY_TIMEOUT:-20}       # seconds a server gets to answer its first request
KEEL_POOL=${KEEL_POOL:-}                 # a prebuilt keel-pool binary: skips the release build

VENV="$BENCH_DIR/.venv"
OUT="$BENCH_DIR/.out"
SYS_PYTHON=/usr/bin/python3              # Debian's python: the one keel-pool embeds, not pyenv's
WSGI_APP="$BENCH_DIR/apps/hello_wsgi.py"
EXPECTED_BODY=$'Hello world!\n'
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

export PATH="$PATH:/usr/sbin:/sbin"   # nginx lives in sbin

log() { printf '==> %s\n' "$*" >&2; }

# --- 1. tools -------------------------------------------------------------------------------

apt_updated=0
apt_install() {
    if [ "$apt_updated" = 0 ]; then
        log "apt-get update"
        apt-get update -qq
        apt_updated=1
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

install_tools() {
    local -a missing=()
    command -v curl >/dev/null || missing+=(curl)
    command -v wrk >/dev/null || missing+=(wrk)
    if want_uwsgi && [ ! -x "$VENV/bin/uwsgi" ]; then
        # uWSGI compiles against the venv's python: needs a C compiler, Python.h and venv/ensurepip.
        command -v gcc >/dev/null && command -v make >/dev/null || missing+=(build-essential)
        "$SYS_PYTHON" -c 'import sysconfig, os, sys
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' 2>/dev/null ||
            missing+=(python3-dev)
        "$SYS_PYTHON" -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
    fi
    if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
    # nginx-light is the small build (a transitional name for nginx on Debian 12).
    command -v nginx >/dev/null || apt_install nginx-light || apt_install nginx

    if want_uwsgi && [ ! -x "$VENV/bin/uwsgi" ]; then
        log "uWSGI ($UWSGI_SPEC) into $VENV (compiles, about a minute)"
        [ -x "$VENV/bin/python" ] || "$SYS_PYTHON" -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "$UWSGI_SPEC"
    fi
}

# --- 2. keel-pool release build ---------------------------------------------------------------

build_keel_pool() {
    if [ -n "$KEEL_POOL" ]; then
        [ -x "$KEEL_POOL" ] || { echo "KEEL_POOL=$KEEL_POOL is not an executable" >&2; exit 1; }
        return
    fi
    log "swift build -c release --product keel-pool"
    (cd "$ROOT" && swift build -c release --product keel-pool) >&2
    KEEL_POOL="$(cd "$ROOT" && swift build -c release --show-bin-path)/keel-pool"
}

# --- 3. servers -----------------------------------------------------------------------------

TMP=$(mktemp -d "${TMPDIR:-/tmp}/keel-bench.XXXXXX")
SERVERS=()   # "pid:signal" of each running server; each is its own process-group leader

# alive PID : PID runs (an exited child stays a zombie until waited for, and kill -0 still works on it).
alive() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

stop_servers() {
    local entry pid sig deadline
    for entry in ${SERVERS[@]+"${SERVERS[@]}"}; do
        pid=${entry%%:*} sig=${entry##*:}
        kill -"$sig" "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 10))
    for entry in ${SERVERS[@]+"${SERVERS[@]}"}; do
        pid=${entry%%:*}
        while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        # The master leads its own process group: this also takes any worker it left behind.
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    SERVERS=()
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_servers
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start NAME STOP_SIGNAL CMD... : runs CMD in its own session (so its workers can be stopped as a
# group) with its output in $TMP/NAME.log.
start() {
    local name=$1 sig=$2
    shift 2
    printf '%q ' "$@" | sed 's/ $//' >"$TMP/$name.cmd"
    # Not a group leader here (no job control), so setsid execs in place and $! is the server.
    setsid "$@" >"$TMP/$name.log" 2>&1 </dev/null &
    LAST_PID=$!
    SERVERS+=("$!:$sig")
}

free_port() {
    "$SYS_PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_ready URL : polls until URL answers 200 with the hello body, or fails with the servers' logs.
wait_ready() {
    local url=$1 deadline=$((SECONDS + READY_TIMEOUT)) body entry
    while :; do
        if body=$(curl -fsS --max-time 2 "$url" 2>/dev/null) && [ "$body"$'\n' = "$EXPECTED_BODY" ]; then
            return 0
        fi
        for entry in ${SERVERS[@]+"${SERVERS[@]}"}; do
            alive "${entry%%:*}" || { echo "a server exited before $url was ready" >&2; dump_logs; exit 1; }
        done
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "$url not ready after ${READY_TIMEOUT}s" >&2
            dump_logs
            exit 1
        fi
        sleep 0.1
    done
}

dump_logs() {
    local f
    for f in "$TMP"/*.log; do
        [ -e "$f" ] || continue
        echo "--- $(basename "$f")" >&2
        tail -n 30 "$f" >&2
    done
}

NGINX_CONF_DIR=""
nginx_conf_dir() {
    # uwsgi_params sits beside the compiled-in nginx.conf (/etc/nginx on Debian).
    local conf
    conf=$(nginx -V 2>&1 | tr ' ' '\n' | sed -n 's/^--conf-path=//p')
    NGINX_CONF_DIR=$(dirname "${conf:-/etc/nginx/nginx.conf}")
    [ -r "$NGINX_CONF_DIR/uwsgi_params" ] || { echo "no $NGINX_CONF_DIR/uwsgi_params" >&2; exit 1; }
}

# start_nginx NAME PORT SOCKET : one nginx worker on 127.0.0.1:PORT passing every request to SOCKET.
start_nginx() {
    local name=$1 port=$2 sock=$3 dir="$TMP/$1"
    mkdir -p "$dir"
    {
        # Workers must reach the socket in the 0700 temp dir; as root they would otherwise be nobody.
        if [ "$(id -u)" = 0 ]; then echo "user root;"; fi
        cat <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port;
        location / {
            include $NGINX_CONF_DIR/uwsgi_params;
            uwsgi_pass unix:$sock;
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    # QUIT: graceful stop (TERM would also do; QUIT lets wrk's last responses finish).
    start "$name" QUIT nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" -g 'daemon off;'
}

# --- 4. measuring ---------------------------------------------------------------------------

ROWS=()   # "key|label|rps|p99ms|errors|app-server CPU µs per request"

to_ms() {   # wrk's latency ("812.00us", "3.21ms", "1.02s", "1.50m") → milliseconds
    awk -v v="$1" 'BEGIN {
        n = v + 0; u = v; sub(/^[0-9.]+/, "", u)
        if (u == "us") n /= 1000; else if (u == "s") n *= 1000; else if (u == "m") n *= 60000; else if (u == "h") n *= 3600000
        printf "%.2f", n }'
}

# session_cpu_ticks SID : user+system CPU ticks of every live process in session SID (all threads).
session_cpu_ticks() {
    local sid=$1 total=0 stat f
    for stat in /proc/[0-9]*/stat; do
        # Fields after the ")" that closes the command name: 4 = session, 12 = utime, 13 = stime.
        f=$(sed 's/^.*) //' "$stat" 2>/dev/null) || continue
        set -- $f
        [ "${4:-}" = "$sid" ] && total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# measure KEY LABEL URL [APP_SID] : warm up, then one measured wrk run; raw output kept in .out/.
# With APP_SID, also the app server's CPU time per request (its whole session, master and workers):
# the figure that still compares app servers when the proxy in front is the bottleneck.
measure() {
    local key=$1 label=$2 url=$3 sid=${4:-} raw="$OUT/wrk-$1.txt" rps p99 errors cpu_before cpu_after requests cpu_us="-"
    log "$label: warm-up $WARMUP"
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$url" >/dev/null
    log "$label: wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency $url"
    [ -n "$sid" ] && cpu_before=$(session_cpu_ticks "$sid")
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$url" >"$raw"
    if [ -n "$sid" ]; then
        cpu_after=$(session_cpu_ticks "$sid")
        requests=$(awk '/requests in/ { print $1; exit }' "$raw")
        cpu_us=$(awk -v t=$((cpu_after - cpu_before)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
            'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')
    fi
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$raw")
    p99=$(to_ms "$(awk '$1 == "99%" { print $2; exit }' "$raw")")
    # Socket errors and non-2xx answers: a fast row with errors is not a result.
    errors=$(awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
                  /Non-2xx or 3xx responses:/ { n += $5 }
                  END { print n + 0 }' "$raw")
    ROWS+=("$key|$label|$rps|$p99|$errors|$cpu_us")
    log "$label: $rps req/s, p99 $p99 ms, $errors errors, app server CPU $cpu_us µs/request"
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

field() {   # field KEY N : the Nth field of row KEY (empty when the row did not run)
    local r
    for r in ${ROWS[@]+"${ROWS[@]}"}; do
        [ "${r%%|*}" = "$1" ] && { echo "$r" | cut -d'|' -f"$2"; return; }
    done
}

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

environment() {
    local cpu
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- nproc: $(nproc); CPU: ${cpu:-unknown}"
    echo "- kernel: $(uname -srm)"
    echo "- nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    if want_uwsgi; then echo "- uWSGI: $("$VENV/bin/uwsgi" --version) ($UWSGI_SPEC, $("$VENV/bin/python" -V))"; fi
    if want_keel; then echo "- keel-pool: $KEEL_POOL"; fi
    echo "- wrk: $(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }')"
    echo "- command: \`$INVOCATION\`"
    echo "- each row: \`wrk -t$WRK_THREADS -c$CONNECTIONS -d$WARMUP URL\` (warm-up, discarded), then \`wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency URL\`"
    echo "- servers (temp paths are per run):"
    local f
    for f in "$OUT"/cmd-*.txt; do
        [ -e "$f" ] || continue
        echo "  - \`$(cat "$f")\`"
    done
}

# --- main -----------------------------------------------------------------------------------

install_tools
if want_keel; then build_keel_pool; fi
nginx_conf_dir
mkdir -p "$OUT"
rm -f "$OUT"/wrk-*.txt "$OUT"/cmd-*.txt

if want_keel; then row_a; fi
if want_uwsgi; then row_d; fi
if want_keel; then row_b; fi
if want_uwsgi; then row_c; fi

for f in "$TMP"/*.cmd; do cp "$f" "$OUT/cmd-$(basename "$f" .cmd).txt"; done

{
    echo "# Keel bench: keel-pool vs uWSGI"
    echo
    report
    echo
    environment
} >"$OUT/latest.md"
cp "$OUT/latest.md" "$OUT/$(date -u +%Y%m%dT%H%M%SZ).md"

echo
report
echo
echo "Written to bench/.out/latest.md (raw wrk output: bench/.out/wrk-*.txt)"
