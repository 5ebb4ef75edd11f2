# Helpers shared by bench/run.sh, bench/front.sh and bench/static.sh; sourced, not run. See
# bench/README.md.
#
# The sourcing script sets INVOCATION (its command line, for the report) and OUT_PREFIX (what its
# files in bench/.out start with: "" for run.sh, "front-" for front.sh, "static-" for static.sh),
# may set the knobs below first, then calls setup_tmp before it starts any server.
# shellcheck shell=bash

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)

DURATION=${DURATION:-10s}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
WARMUP=${WARMUP:-2s}
READY_TIMEOUT=${READY_TIMEOUT:-20}       # seconds a server gets to answer its first request

OUT="$BENCH_DIR/.out"
OUT_PREFIX=${OUT_PREFIX:-}
SYS_PYTHON=/usr/bin/python3              # Debian's python: the one keel-pool embeds, not pyenv's
EXPECTED_BODY=$'Hello world!\n'

export PATH="$PATH:/usr/sbin:/sbin"   # nginx lives in sbin

log() { printf '==> %s\n' "$*" >&2; }

# --- tools ----------------------------------------------------------------------------------

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

# install_tools [uwsgi] : curl, wrk and nginx with apt when missing; with "uwsgi", also uWSGI
# ($UWSGI_SPEC) from PyPI into $VENV, a venv of $SYS_PYTHON.
install_tools() {
    local with_uwsgi=0
    [ "${1:-}" = uwsgi ] && with_uwsgi=1
    local -a missing=()
    command -v curl >/dev/null || missing+=(curl)
    command -v wrk >/dev/null || missing+=(wrk)
    if [ "$with_uwsgi" = 1 ] && [ ! -x "$VENV/bin/uwsgi" ]; then
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

    if [ "$with_uwsgi" = 1 ] && [ ! -x "$VENV/bin/uwsgi" ]; then
        log "uWSGI ($UWSGI_SPEC) into $VENV (compiles, about a minute)"
        [ -x "$VENV/bin/python" ] || "$SYS_PYTHON" -m venv "$VENV"
        "$VENV/bin/pip" install --quiet --disable-pip-version-check "$UWSGI_SPEC"
    fi
}

# --- release build --------------------------------------------------------------------------

# release_build SCRATCH [PRODUCT...] : `swift build -c release` in $ROOT, one call per PRODUCT (every
# product when none is given), in the scratch dir SCRATCH (SwiftPM's default .build when empty).
# Sets BIN_DIR to the directory the binaries are in.
release_build() {
    local scratch=$1 product
    shift
    local -a args=(-c release)
    if [ -n "$scratch" ]; then args+=(--scratch-path "$scratch"); fi
    if [ "$#" = 0 ]; then
        log "swift build ${args[*]}"
        (cd "$ROOT" && swift build "${args[@]}") >&2
    fi
    for product in "$@"; do
        log "swift build ${args[*]} --product $product"
        (cd "$ROOT" && swift build "${args[@]}" --product "$product") >&2
    done
    BIN_DIR=$(cd "$ROOT" && swift build "${args[@]}" --show-bin-path)
}

# require_executable NAME PATH : fails unless PATH (given as NAME=PATH) is an executable.
# build_keel : KEEL and KEEL_POOL as given (checked), else a release build of keel, keel-pool and the worker
# library in .build-bench (wsgi.sh, asgi.sh).
build_keel() {
    if [ -n "$KEEL" ] && [ -n "$KEEL_POOL" ]; then
        require_executable KEEL "$KEEL"
        require_executable KEEL_POOL "$KEEL_POOL"
        return
    fi
    release_build "$ROOT/.build-bench" keel-pool keel KeelPoolWorker
    KEEL=${KEEL:-$BIN_DIR/keel}
    KEEL_POOL=${KEEL_POOL:-$BIN_DIR/keel-pool}
}

# keel_binaries : KEEL and KEEL_POOL as given, or from a release build into $SCRATCH; both must be executables.
keel_binaries() {
    if [ -z "$KEEL" ] || [ -z "$KEEL_POOL" ]; then
        release_build "$SCRATCH"
        KEEL=${KEEL:-$BIN_DIR/keel}
        KEEL_POOL=${KEEL_POOL:-$BIN_DIR/keel-pool}
    fi
    require_executable KEEL "$KEEL"
    require_executable KEEL_POOL "$KEEL_POOL"
}

require_executable() {
    [ -x "$2" ] || { echo "$1=$2 is not an executable" >&2; exit 1; }
}

# --- servers --------------------------------------------------------------------------------

TMP=""
SERVERS=()   # "pid:signal" of each running server; each is its own process-group leader
HELPERS=()   # pids of background helpers (samplers) to kill on exit

# setup_tmp NAME : a fresh private temp dir in $TMP, removed (with every server stopped) on exit.
setup_tmp() {
    TMP=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
    trap cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
}

# alive PID : PID runs (an exited child stays a zombie until waited for, and kill -0 still works on it).
alive() {
    local state
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# stop_entries "pid:signal"... : signal each server, give them 10 s together, then KILL their groups.
stop_entries() {
    local entry pid sig deadline
    for entry in "$@"; do
        pid=${entry%%:*} sig=${entry##*:}
        kill -"$sig" "$pid" 2>/dev/null || true
    done
    deadline=$((SECONDS + 10))
    for entry in "$@"; do
        pid=${entry%%:*}
        while alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
        # The master leads its own process group: this also takes any worker it left behind.
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}

stop_servers() {
    stop_entries ${SERVERS[@]+"${SERVERS[@]}"}
    SERVERS=()
}

# stop_server PID : stops the one server start gave PID, leaving the others running.
stop_server() {
    local entry target=""
    local -a keep=()
    for entry in ${SERVERS[@]+"${SERVERS[@]}"}; do
        if [ "${entry%%:*}" = "$1" ]; then target=$entry; else keep+=("$entry"); fi
    done
    SERVERS=(${keep[@]+"${keep[@]}"})
    if [ -n "$target" ]; then stop_entries "$target"; fi
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in ${HELPERS[@]+"${HELPERS[@]}"}; do kill "$pid" 2>/dev/null || true; done
    stop_servers
    [ -n "$TMP" ] && rm -rf "$TMP"
    exit "$rc"
}

# start NAME STOP_SIGNAL CMD... : runs CMD in its own session (so its workers can be stopped as a
# group) with its output in $TMP/NAME.log. Sets LAST_PID (= its session id).
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

# wait_ready URL [FILE] : polls until URL answers 200 with the hello body (with FILE: a body equal to
# FILE byte for byte), or fails with the servers' logs.
wait_ready() {   # wait_ready URL [FILE|200]: the body is EXPECTED_BODY, FILE's bytes, or any 2xx body
    local url=$1 file=${2:-} deadline=$((SECONDS + READY_TIMEOUT)) body entry
    while :; do
        if [ "$file" = 200 ]; then
            curl -kfsS --max-time 2 -o /dev/null "$url" 2>/dev/null && return 0
        elif [ -n "$file" ]; then
            if curl -kfsS --max-time 2 -o "$TMP/ready.body" "$url" 2>/dev/null && cmp -s "$TMP/ready.body" "$file"; then
                return 0
            fi
        elif body=$(curl -kfsS --max-time 2 "$url" 2>/dev/null) && [ "$body"$'\n' = "$EXPECTED_BODY" ]; then
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

# children PID : the pids whose parent is PID.
children() {
    local parent=$1 stat f pid
    for stat in /proc/[0-9]*/stat; do
        f=$(sed 's/^.*) //' "$stat" 2>/dev/null) || continue
        set -- $f
        # After the ")" that closes the command name: 1 = state, 2 = parent pid.
        if [ "${2:-}" = "$parent" ]; then pid=${stat#/proc/}; echo "${pid%/stat}"; fi
    done
}

# --- nginx ----------------------------------------------------------------------------------

NGINX_CONF_DIR=""
nginx_conf_dir() {
    # uwsgi_params sits beside the compiled-in nginx.conf (/etc/nginx on Debian).
    local conf
    conf=$(nginx -V 2>&1 | tr ' ' '\n' | sed -n 's/^--conf-path=//p')
    NGINX_CONF_DIR=$(dirname "${conf:-/etc/nginx/nginx.conf}")
    [ -r "$NGINX_CONF_DIR/uwsgi_params" ] || { echo "no $NGINX_CONF_DIR/uwsgi_params" >&2; exit 1; }
}

# start_nginx NAME PORT SOCKET : one nginx worker on 127.0.0.1:PORT passing every request to SOCKET.
# Sets LAST_PID to the master (its session holds the worker).
start_nginx() {
    start_nginx_with "$1" "$2" "" "            include $NGINX_CONF_DIR/uwsgi_params;
            uwsgi_pass unix:$3;"
}

# start_nginx_with NAME PORT HTTP_LINES LOCATION_LINES : one nginx worker on 127.0.0.1:PORT, the
# config generated in $TMP/NAME with HTTP_LINES added to its http block and LOCATION_LINES as the
# body of its only `location /`; NGINX_LISTEN_OPTS (e.g. "ssl") is added to its listen line,
# NGINX_WORKER_CONNECTIONS (default 1024) sets worker_connections.
# Sets LAST_PID to the master (its session holds the worker).
start_nginx_with() {
    local name=$1 port=$2 http_lines=$3 location_lines=$4 dir="$TMP/$1"
    mkdir -p "$dir"
    {
        # Workers must reach the socket in the 0700 temp dir; as root they would otherwise be nobody.
        if [ "$(id -u)" = 0 ]; then echo "user root;"; fi
        cat <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
worker_rlimit_nofile $((${NGINX_WORKER_CONNECTIONS:-1024} + 100));
events { worker_connections ${NGINX_WORKER_CONNECTIONS:-1024}; }
http {
    access_log off;
    client_body_temp_path $dir/client_body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
EOF
        if [ -n "$http_lines" ]; then echo "$http_lines"; fi
        cat <<EOF
    server {
        listen 127.0.0.1:$port${NGINX_LISTEN_OPTS:+ $NGINX_LISTEN_OPTS};
        location / {
$location_lines
        }
    }
}
EOF
    } >"$dir/nginx.conf"
    # QUIT: graceful stop (TERM would also do; QUIT lets wrk's last responses finish).
    start "$name" QUIT nginx -c "$dir/nginx.conf" -p "$dir" -e "$dir/error.log" -g 'daemon off;'
}

# --- measuring ------------------------------------------------------------------------------

ROWS=()   # one "key|label|..." entry per measured row; the fields after the label are the script's

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

# cpu_us_per_request TICKS_BEFORE TICKS_AFTER RAW : CPU µs per request of wrk's run in file RAW.
cpu_us_per_request() {
    local requests
    requests=$(awk '/requests in/ { print $1; exit }' "$3")
    awk -v t=$(($2 - $1)) -v hz="$(getconf CLK_TCK)" -v n="$requests" \
        'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }'
}

# warm_up LABEL URL [WRK_ARG...] : a discarded wrk run of $WARMUP (WRK_ARGs, e.g. -H 'Accept-Encoding:
# gzip', go before the URL).
warm_up() {
    local label=$1 url=$2
    shift 2
    log "$label: warm-up $WARMUP"
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$WARMUP" "$@" "$url" >/dev/null
}

# wrk_measured LABEL URL RAW [WRK_ARG...] : the measured wrk run, its output in RAW.
wrk_measured() {
    local label=$1 url=$2 raw=$3
    shift 3
    log "$label: wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency $* $url"
    wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" >"$raw"
}

# wrk_parse RAW : sets WRK_RPS, WRK_P99 (ms), WRK_ERRORS and WRK_MIBS (Transfer/sec in MiB/s: wrk's
# KB, MB and GB are 1024-based) from wrk's output in RAW.
wrk_parse() {
    WRK_RPS=$(awk '/^Requests\/sec:/ { print $2 }' "$1")
    WRK_MIBS=$(awk '/^Transfer\/sec:/ {
        n = $2 + 0; u = $2; sub(/^[0-9.]+/, "", u)
        if (u == "B") n /= 1048576; else if (u == "KB") n /= 1024; else if (u == "GB") n *= 1024; else if (u == "TB") n *= 1048576
        printf "%.1f", n }' "$1")
    WRK_P99=$(to_ms "$(awk '$1 == "99%" { print $2; exit }' "$1")")
    # Socket errors and non-2xx answers: a fast row with errors is not a result.
    WRK_ERRORS=$(awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 }
                      /Non-2xx or 3xx responses:/ { n += $5 }
                      END { print n + 0 }' "$1")
}

# --- report ---------------------------------------------------------------------------------

# headers_note INTRO : a markdown list of the response headers saved in bench/.out (one
# ${OUT_PREFIX}headers-KEY.txt per row, from `curl -D -`), after the list item INTRO.
headers_note() {
    local f
    echo "- $1"
    for f in "$OUT/${OUT_PREFIX}"headers-*.txt; do
        [ -e "$f" ] || continue
        echo "  - $(basename "$f" .txt | sed "s/^${OUT_PREFIX}headers-//"): \`$(paste -sd'|' "$f" | sed 's/|/ · /g')\`"
    done
}

field() {   # field KEY N : the Nth field of row KEY (empty when the row did not run)
    local r
    for r in ${ROWS[@]+"${ROWS[@]}"}; do
        [ "${r%%|*}" = "$1" ] && { echo "$r" | cut -d'|' -f"$2"; return; }
    done
    return 0   # a row that did not run is empty, not a failure (set -e would end the report)
}

# field_ratio KEY_A KEY_B N : field N of row KEY_A ÷ the same of KEY_B, as "1.23×" ("-" when either is missing).
field_ratio() {
    awk -v a="$(field "$1" "$3")" -v b="$(field "$2" "$3")" 'BEGIN { if (a > 0 && b > 0) printf "%.2f×", a / b; else print "-" }'
}

# prepare_out : bench/.out exists and holds none of this script's previous wrk and command files.
prepare_out() {
    mkdir -p "$OUT"
    rm -f "$OUT/${OUT_PREFIX}"wrk-*.txt "$OUT/${OUT_PREFIX}"cmd-*.txt
}

# save_cmds : every server's command line (from start) into bench/.out, for environment.
save_cmds() {
    local f
    for f in "$TMP"/*.cmd; do
        [ -e "$f" ] || continue
        cp "$f" "$OUT/${OUT_PREFIX}cmd-$(basename "$f" .cmd).txt"
    done
}

# source_state : the commit the working tree is at, and whether it had uncommitted changes.
source_state() {
    local head dirty
    head=$(git -C "$ROOT" log -1 --format='%h ("%<(60,trunc)%s' 2>/dev/null | sed 's/ *$/")/') || head=unknown
    dirty=$(git -C "$ROOT" status --porcelain -- Sources Package.swift 2>/dev/null | wc -l)
    echo "commit $head$([ "$dirty" = 0 ] || echo " + $dirty uncommitted paths under Sources/, Package.swift")"
}

# environment [LINE...] : the machine, the tools, the command and every server command line, as a
# markdown list; each LINE (e.g. "- uWSGI: ...") goes after the nginx version.
environment() {
    local cpu line f
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- nproc: $(nproc); CPU: ${cpu:-unknown}"
    echo "- kernel: $(uname -srm)"
    echo "- nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    for line in "$@"; do echo "$line"; done
    echo "- command: \`$INVOCATION\`"
    # LOAD_LINE: a script whose load is not wrk's (h2.sh) describes its own.
    if [ -n "${LOAD_LINE:-}" ]; then
        echo "$LOAD_LINE"
    else
        echo "- wrk: $(wrk -v 2>&1 | head -n 1 | awk '{ print $1, $2 }')"
        echo "- each row: \`wrk -t$WRK_THREADS -c$CONNECTIONS -d$WARMUP URL\` (warm-up, discarded), then \`wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION --latency URL\`"
    fi
    echo "- servers (temp paths are per run):"
    for f in "$OUT/${OUT_PREFIX}"cmd-*.txt; do
        [ -e "$f" ] || continue
        echo "  - \`$(cat "$f")\`"
    done
}

# publish NAME : stdin into bench/.out/NAME-latest.md (latest.md when NAME is empty) and a
# timestamped copy.
publish() {
    local latest="$OUT/${1:+$1-}latest.md"
    cat >"$latest"
    cp "$latest" "$OUT/${1:+$1-}$(date -u +%Y%m%dT%H%M%SZ).md"
}
