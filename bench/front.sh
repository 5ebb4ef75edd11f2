#!/usr/bin/env bash
# keel vs nginx as the front (issue 4): each in front of the same keel-pool `hello` backend
# (uwsgi over a unix socket), plaintext HTTP/1.1 keep-alive from wrk, measured one after the other
# in one run on loopback. Reports requests/s, p99, errors, the front's and the app server's CPU per
# request, the connections keel-pool accepted per request, and the front's RSS under load (keel's
# process vs the nginx worker). See bench/README.md.
#
# Rows: N nginx (uwsgi_pass: a connection per request); K0 keel with keepalive = 0 (a connection per
# request, as before the keel wire); K keel on the keel wire (persistent connections, the default); K2
# the same with 2 event loops; N2 nginx again (drift check); then NU nginx and KU keel in front of the real
# uWSGI (hello_wsgi.py, 2 × 1; a connection per request on both sides: uWSGI has no keep-alive on --socket).
#
#   bench/front.sh                        # rows N, K0, K, K2, N2, NU, KU
#   DRIFT=0 bench/front.sh                # without the second nginx row
#   METRICS=1 bench/front.sh              # also row KM: row K with [metrics] and [status] on (goal: CPU/req ≤ 1.03× K)
#   KEEL=... KEEL_POOL=... bench/front.sh # prebuilt binaries: no release build
#   DURATION=30s CONNECTIONS=128 bench/front.sh
set -euo pipefail

KEEL=${KEEL:-}                 # a prebuilt keel binary
KEEL_POOL=${KEEL_POOL:-}       # a prebuilt keel-pool binary (both given: no release build)
DRIFT=${DRIFT:-1}              # 1: measure nginx again at the end (row N2) as a drift check
METRICS=${METRICS:-0}          # 1: add row KM, keel on the keel wire with /metrics and the status page configured
OUT_PREFIX="front-"            # bench/.out/front-latest.md, front-wrk-KEY.txt, front-cmd-NAME.txt

# DURATION (10s), CONNECTIONS (64), WRK_THREADS (2), WARMUP (2s), READY_TIMEOUT (20): in lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCRATCH="$ROOT/.build-bench"   # its own scratch dir: a debug build in .build is not locked or replaced
INVOCATION="DURATION=$DURATION CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS WARMUP=$WARMUP DRIFT=$DRIFT METRICS=$METRICS${KEEL:+ KEEL=$KEEL}${KEEL_POOL:+ KEEL_POOL=$KEEL_POOL} bench/front.sh"

if [ "$#" -gt 0 ]; then
    echo "bench/front.sh takes no arguments; set DURATION, CONNECTIONS, WRK_THREADS, WARMUP, DRIFT (0|1)," >&2
    echo "READY_TIMEOUT, KEEL or KEEL_POOL in the environment instead (see bench/README.md)" >&2
    exit 2
fi
case "$DRIFT" in
    0 | 1) ;;
    *) echo "DRIFT=$DRIFT: give 0 or 1" >&2; exit 2 ;;
esac

build() {
    if [ -z "$KEEL" ] || [ -z "$KEEL_POOL" ]; then
        release_build "$SCRATCH"   # both products, one build
        KEEL=${KEEL:-$BIN_DIR/keel}
        KEEL_POOL=${KEEL_POOL:-$BIN_DIR/keel-pool}
    fi
    require_executable KEEL "$KEEL"
    require_executable KEEL_POOL "$KEEL_POOL"
}

UWSGI=/usr/bin/uwsgi   # rows NU/KU: Debian's uWSGI with its python3 plugin, as bench/wsgi.sh runs it
setup_tmp keel-front
SOCK="$TMP/app.sock"
POOL_SID=""

# --- measuring ------------------------------------------------------------------------------

# ROWS: "key|label|rps|p99ms|errors|front CPU µs/req|app CPU µs/req|RSS idle|RSS peak|RSS end|anon end|accepts/req"
# (RSS in MiB, of RSS_PID: keel's only process, or the nginx worker)

# sample_rss PID FILE STOP : appends "VmRSS RssAnon" (KiB, from /proc/PID/status) to FILE once a
# second until the file STOP exists (it stops by itself: killing it would orphan its sleep).
sample_rss() {
    trap - EXIT INT TERM
    while [ ! -e "$3" ]; do
        awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } END { if (r != "") print r, a }' \
            "/proc/$1/status" >>"$2" 2>/dev/null || true
        sleep 1
    done
}

mib() { awk -v k="$1" 'BEGIN { if (k == "") print "-"; else printf "%.1f", k / 1024 }'; }

# pool_accepts : connections keel-pool's workers have accepted so far (its stats socket, summed over workers).
pool_accepts() {
    [ -n "$STATS" ] || { echo 0; return; }
    /usr/bin/python3 -c '
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); data = b""
while True:
    chunk = s.recv(65536)
    if not chunk: break
    data += chunk
print(sum(w.get("connections", 0) for w in json.loads(data)["workers"]))' "$STATS"
}

# measure KEY LABEL URL FRONT_SID RSS_PID : warm up, then one measured wrk run while RSS_PID's
# memory is sampled every second; CPU per request of the front's session and of keel-pool's.
measure() {
    local key=$1 label=$2 url=$3 front_sid=$4 rss_pid=$5 raw="$OUT/${OUT_PREFIX}wrk-$1.txt"
    local samples="$TMP/rss-$1.txt" idle front_before app_before front_cpu app_cpu sampler peak end anon
    local accepts_before accepts
    curl -sS -D - -o /dev/null "$url" | tr -d '\r' | sed '/^$/d' >"$OUT/${OUT_PREFIX}headers-$key.txt"
    idle=$(awk '/^VmRSS:/ { print $2 }' "/proc/$rss_pid/status")
    warm_up "$label" "$url"
    front_before=$(session_cpu_ticks "$front_sid")
    app_before=$(session_cpu_ticks "$POOL_SID")
    accepts_before=$(pool_accepts)
    : >"$samples"
    sample_rss "$rss_pid" "$samples" "$samples.stop" &
    sampler=$!
    HELPERS+=("$sampler")
    wrk_measured "$label" "$url" "$raw"
    touch "$samples.stop"
    wait "$sampler" || true
    front_cpu=$(cpu_us_per_request "$front_before" "$(session_cpu_ticks "$front_sid")" "$raw")
    app_cpu=$(cpu_us_per_request "$app_before" "$(session_cpu_ticks "$POOL_SID")" "$raw")
    wrk_parse "$raw"
    accepts=$(awk -v a="$accepts_before" -v b="$(pool_accepts)" -v n="$(awk '/requests in/ { print $1 }' "$raw")" \
        -v known="$STATS" 'BEGIN { if (known == "") print "-"; else if (n > 0) printf "%.3f", (b - a) / n; else print "-" }')
    peak=$(awk '$1 > m { m = $1 } END { print m }' "$samples")
    end=$(awk 'END { print $1 }' "$samples")
    anon=$(awk 'END { print $2 }' "$samples")
    ROWS+=("$key|$label|$WRK_RPS|$WRK_P99|$WRK_ERRORS|$front_cpu|$app_cpu|$(mib "$idle")|$(mib "$peak")|$(mib "$end")|$(mib "$anon")|$accepts")
    log "$label: $WRK_RPS req/s, p99 $WRK_P99 ms, $WRK_ERRORS errors, front CPU $front_cpu µs/request," \
        "app server CPU $app_cpu µs/request, $accepts pool accepts/request, front RSS peak $(mib "$peak") MiB" \
        "($(wc -l <"$samples") samples)"
    if [ "$WRK_ERRORS" != 0 ]; then
        log "$label: ERRORS under load:"
        grep -E 'Socket errors|Non-2xx' "$raw" >&2 || true
    fi
}

row_nginx() {   # row_nginx KEY NAME [SOCKET APP] : nginx, 1 worker → keel-pool (or the uwsgi server on SOCKET)
    local key=$1 name=$2 sock=${3:-$SOCK} app=${4:-keel-pool} port master worker
    port=$(free_port)
    start_nginx "$name" "$port" "$sock"
    master=$LAST_PID
    wait_ready "http://127.0.0.1:$port/"
    worker=$(children "$master")
    [ "$(echo "$worker" | wc -w)" = 1 ] || { echo "nginx $master: expected one worker, found: $worker" >&2; exit 1; }
    measure "$key" "nginx (1 worker) → $app" "http://127.0.0.1:$port/" "$master" "$worker"
    stop_server "$master"
}

row_keel() {   # row_keel KEY NAME EVENT_LOOPS KEEPALIVE [SOCKET APP] : keel → keel-pool (KEEPALIVE 0: a connection per request)
    local key=$1 name=$2 loops=$3 keepalive=$4 sock=${5:-$SOCK} app=${6:-keel-pool} port pid config="$TMP/$2.toml" wire
    port=$(free_port)
    printf '[[listen]]\naddress = "127.0.0.1:%s"\n[upstream.app]\nservers = ["unix:%s"]\nkeepalive = %s\n[[route]]\npath = "/"\nuwsgi = "app"\n[log]\naccess = "off"\n' \
        "$port" "$sock" "$keepalive" >"$config"
    if [ "${WITH_METRICS:-0}" = 1 ]; then
        printf '[metrics]\nlisten = "127.0.0.1:%s"\n[status]\npath = "/keel/status"\n' "$(free_port)" >>"$config"
    fi
    start "$name" TERM "$KEEL" --config "$config" --event-loops "$loops"
    pid=$LAST_PID
    wait_ready "http://127.0.0.1:$port/"
    wire=$([ "$keepalive" = 0 ] && echo "a connection per request" || echo "keel wire, keepalive $keepalive")
    if [ "${WITH_METRICS:-0}" = 1 ]; then wire+=", metrics and status page on"; fi
    [ "$app" = keel-pool ] || wire="a connection per request: $app does not speak the keel wire"
    measure "$key" "keel ($loops event loop$([ "$loops" = 1 ] || echo s), $wire) → $app" "http://127.0.0.1:$port/" "$pid" "$pid"
    stop_server "$pid"
}

# --- report ---------------------------------------------------------------------------------

report() {
    local r key label rps p99 errors fcpu acpu idle peak end anon
    echo "| front | requests/s | p99 (ms) | errors | front CPU µs/req | keel-pool CPU µs/req | keel-pool accepts/req | front RSS idle (MiB) | front RSS peak (MiB) | front RSS end (MiB) | of which anon at end (MiB) |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    for r in ${ROWS[@]+"${ROWS[@]}"}; do
        IFS='|' read -r key label rps p99 errors fcpu acpu idle peak end anon accepts <<<"$r"
        echo "| $key. $label | $rps | $p99 | $errors | $fcpu | $acpu | $accepts | $idle | $peak | $end | $anon |"
    done
    echo
    echo "| ratio | requests/s (higher is better) | p99 (lower is better) | front RSS peak (lower is better) | front CPU µs/req (lower is better) |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    ratio_line "keel on the keel wire ÷ nginx, equal workers (K / N): the compass ratio (goal ≥ 1.3×)" K N
    ratio_line "keel a connection per request ÷ nginx (K0 / N): before the keel wire" K0 N
    ratio_line "keel with metrics on ÷ off (KM / K): front CPU goal ≤ 1.03×" KM K
    ratio_line "keel wire ÷ a connection per request (K / K0)" K K0
    ratio_line "keel ÷ nginx, equal workers, vs the drift-check run (K / N2)" K N2
    ratio_line "keel with 2 event loops ÷ nginx (K2 / N)" K2 N
    ratio_line "keel with 2 event loops ÷ nginx, vs the drift-check run (K2 / N2)" K2 N2
    ratio_line "drift: nginx second run ÷ first (N2 / N)" N2 N
    ratio_line "keel → real uWSGI ÷ nginx → real uWSGI (KU / NU), goal ≥ 1.0×" KU NU
    errors_note
}

ratio_line() {   # ratio_line LABEL NUM_KEY DEN_KEY : NUM / DEN for rps, p99, RSS peak, front CPU
    local nr dr
    nr=$(field "$2" 3) dr=$(field "$3" 3)
    [ -n "$nr" ] && [ -n "$dr" ] || return 0
    awk -v l="$1" -v nr="$nr" -v dr="$dr" -v np="$(field "$2" 4)" -v dp="$(field "$3" 4)" \
        -v nm="$(field "$2" 9)" -v dm="$(field "$3" 9)" -v nc="$(field "$2" 6)" -v dc="$(field "$3" 6)" '
        function r(a, b) { return (a + 0 > 0 && b + 0 > 0) ? sprintf("%.2f×", a / b) : "-" }
        BEGIN { printf "| %s | %s | %s | %s | %s |\n", l, r(nr, dr), r(np, dp), r(nm, dm), r(nc, dc) }'
}

errors_note() {   # wrk's error lines of every row that had any
    local r key
    for r in ${ROWS[@]+"${ROWS[@]}"}; do
        key=${r%%|*}
        [ "$(field "$key" 5)" = 0 ] && continue
        echo
        echo "**Row $key had errors under load** (wrk, \`bench/.out/${OUT_PREFIX}wrk-$key.txt\`):"
        echo
        grep -E 'Socket errors|Non-2xx' "$OUT/${OUT_PREFIX}wrk-$key.txt" | sed 's/^ */    /'
    done
}

# --- main -----------------------------------------------------------------------------------

install_tools
[ -x "$UWSGI" ] && [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || apt_install uwsgi-core uwsgi-plugin-python3
build
nginx_conf_dir
prepare_out
rm -f "$OUT/${OUT_PREFIX}"headers-*.txt "$OUT/${OUT_PREFIX}"log-*.log

STATS="$TMP/stats.sock"
start keel-pool TERM "$KEEL_POOL" --socket "$SOCK" --processes 2 --threads 1 --app hello --allow-root --stats "$STATS"
POOL_SID=$LAST_PID

row_nginx N nginx
row_keel K0 keel-0 1 0
row_keel K keel-1 1 128
if [ "$METRICS" = 1 ]; then WITH_METRICS=1 row_keel KM keel-metrics 1 128; fi
row_keel K2 keel-2 2 128
if [ "$DRIFT" = 1 ]; then row_nginx N2 nginx-2; fi
stop_server "$POOL_SID"

# The real uWSGI behind both fronts (issue 14): per-request connections on both sides, the hello WSGI app.
USOCK="$TMP/uwsgi.sock"
start uwsgi INT "$UWSGI" --plugin python3 --master --processes 2 --threads 1 --socket "$USOCK" \
    --wsgi-file "$BENCH_DIR/apps/hello_wsgi.py" --disable-logging
POOL_SID=$LAST_PID
STATS=""
row_nginx NU nginx-uwsgi "$USOCK" uWSGI
row_keel KU keel-uwsgi 1 128 "$USOCK" uWSGI

save_cmds
for f in "$TMP"/*.log; do cp "$f" "$OUT/${OUT_PREFIX}log-$(basename "$f")"; done   # servers' stderr

{
    echo "# Keel bench: keel vs nginx in front of keel-pool"
    echo
    report
    echo
    environment "- keel: $KEEL" "- keel-pool: $KEEL_POOL" "- source: $(source_state)"
    headers_note "response headers (\`curl -D -\`; 13-byte body for all):"
} | publish front

echo
report
echo
echo "Written to bench/.out/front-latest.md (raw wrk output: bench/.out/front-wrk-*.txt)"
