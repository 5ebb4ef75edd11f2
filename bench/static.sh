#!/usr/bin/env bash
# keel vs nginx serving static files (issue 6): a 1 KiB text file, a 1 MiB incompressible file and a
# 64 KiB text file gzipped at level 1, from the same directory, plaintext HTTP/1.1 keep-alive from wrk,
# each front alone and measured one after the other in one run on loopback. Reports requests/s, p99,
# errors, the front's CPU per request, wrk's transfer rate, and the gzipped size each front produced.
# See bench/README.md.
#
#   bench/static.sh                       # rows N-1k N-1m N-gz64, K-1k K-1m K-gz64, then N-1kc K-1kc
#                                         # (1 KiB again with open_file_cache on both fronts)
#   KEEL=... bench/static.sh              # a prebuilt keel: no release build
#   CONNECTIONS_1M=16 bench/static.sh     # fewer connections for the 1 MiB rows (both fronts)
#   DURATION=30s CONNECTIONS=128 bench/static.sh
set -euo pipefail

KEEL=${KEEL:-}                 # a prebuilt keel binary (no release build)
OUT_PREFIX="static-"           # bench/.out/static-latest.md, static-wrk-KEY.txt, static-cmd-NAME.txt

# DURATION (10s), CONNECTIONS (64), WRK_THREADS (2), WARMUP (2s), READY_TIMEOUT (20): in lib.sh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CONNECTIONS_1M=${CONNECTIONS_1M:-$CONNECTIONS}   # wrk connections of the 1 MiB rows, the same for both fronts
GZIP_LEVEL=1                                     # nginx gzip_comp_level = keel [gzip] level
SCRATCH="$ROOT/.build-bench"   # its own scratch dir: a debug build in .build is not locked or replaced
INVOCATION="DURATION=$DURATION CONNECTIONS=$CONNECTIONS CONNECTIONS_1M=$CONNECTIONS_1M WRK_THREADS=$WRK_THREADS WARMUP=$WARMUP${KEEL:+ KEEL=$KEEL} bench/static.sh"

if [ "$#" -gt 0 ]; then
    echo "bench/static.sh takes no arguments; set DURATION, CONNECTIONS, CONNECTIONS_1M, WRK_THREADS, WARMUP," >&2
    echo "READY_TIMEOUT or KEEL in the environment instead (see bench/README.md)" >&2
    exit 2
fi
case "$CONNECTIONS_1M" in
    '' | *[!0-9]* | 0) echo "CONNECTIONS_1M=$CONNECTIONS_1M: give a positive number" >&2; exit 2 ;;
esac

build() {
    if [ -z "$KEEL" ]; then
        release_build "$SCRATCH"   # both products, one build
        KEEL=$BIN_DIR/keel
    fi
    require_executable KEEL "$KEEL"
}

setup_tmp keel-static
DIR="$TMP/www"

# --- the files ------------------------------------------------------------------------------

# make_files : $DIR/k1.txt (1 KiB of text), m1.bin (1 MiB from /dev/urandom: gzip cannot shrink it,
# and neither front gzips it: not a text type, and its rows send no Accept-Encoding) and t64.txt
# (64 KiB of log-like lines, pseudo-random fields from a fixed seed, so gzip has work to do and
# every run compresses the same bytes).
make_files() {
    mkdir -p "$DIR"
    # Whole files first, then cut: `awk | head -c` would end awk with SIGPIPE (fatal under pipefail).
    log_lines 1 >"$TMP/lines-1.txt"
    log_lines 7 >"$TMP/lines-7.txt"
    head -c 1024 "$TMP/lines-1.txt" >"$DIR/k1.txt"
    head -c 65536 "$TMP/lines-7.txt" >"$DIR/t64.txt"
    head -c 1048576 /dev/urandom >"$DIR/m1.bin"
    local f size
    for f in k1.txt:1024 m1.bin:1048576 t64.txt:65536; do
        size=$(wc -c <"$DIR/${f%%:*}")
        [ "$size" = "${f##*:}" ] || { echo "$DIR/${f%%:*}: $size bytes, expected ${f##*:}" >&2; exit 1; }
    done
}

log_lines() {   # log_lines SEED : 2,000 access-log-like lines (more than 64 KiB)
    awk -v seed="$1" 'BEGIN {   # POSIX awk only: mawk is the default awk on Debian
        srand(seed)
        split("GET GET GET GET POST PUT DELETE HEAD", method, " ")
        split("/api/items /api/users /static/css/site.css /static/js/app.js /login /search /api/orders /healthz /images/logo.png /docs/index.html", path, " ")
        split("200 200 200 200 200 304 301 404 500 201", status, " ")
        split("Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0|curl/7.88.1|Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) Safari/605.1.15|python-requests/2.32.3|Go-http-client/1.1", agent, "|")
        split("alice bob carol dave erin frank - - - -", user, " ")
        t = 0
        for (i = 0; i < 2000; i++) {
            t += int(rand() * 3)
            printf "10.%d.%d.%d - %s [%s] \"%s %s?id=%d&page=%d HTTP/1.1\" %s %d \"-\" \"%s\" rt=%.3f uct=%.3f\n",
                int(rand() * 4), int(rand() * 256), int(rand() * 256), user[1 + int(rand() * 10)],
                sprintf("24/Nov/2026:%02d:%02d:%02d +0000", int(t / 3600) % 24, int(t / 60) % 60, t % 60), method[1 + int(rand() * 8)], path[1 + int(rand() * 10)],
                int(rand() * 100000), 1 + int(rand() * 20), status[1 + int(rand() * 10)], int(rand() * 50000),
                agent[1 + int(rand() * 5)], rand() * 0.5, rand() * 0.01
        }
    }'
}

# --- checking the answers -------------------------------------------------------------------

# check URL FILE GZIP(0|1) OUTBASE : one curl; prints "ok" or what is wrong. Without GZIP it sends no
# Accept-Encoding and wants FILE's bytes as they are (and no Content-Encoding); with GZIP it sends
# `Accept-Encoding: gzip` and wants Content-Encoding: gzip and a body that gunzips to FILE. The
# headers are left in OUTBASE.h, the body as received in OUTBASE.b.
check() {
    local url=$1 file=$2 gz=$3 out=$4 code
    local -a args=(-sS --max-time 10 -D "$out.h" -o "$out.b" -w '%{http_code}')
    [ "$gz" = 1 ] && args+=(-H 'Accept-Encoding: gzip')
    code=$(curl "${args[@]}" "$url" 2>"$out.err") || { echo "curl failed: $(head -n 1 "$out.err")"; return; }
    [ "$code" = 200 ] || { echo "status $code"; return; }
    if [ "$gz" = 1 ]; then
        grep -qi '^content-encoding: *gzip' "$out.h" || { echo "no Content-Encoding: gzip"; return; }
        gunzip -c <"$out.b" >"$out.u" 2>/dev/null || { echo "body does not gunzip"; return; }
        cmp -s "$out.u" "$file" || { echo "gunzipped body ($(wc -c <"$out.u") bytes) differs from the file"; return; }
    else
        grep -qi '^content-encoding:' "$out.h" && { echo "unexpected $(grep -i '^content-encoding:' "$out.h" | tr -d '\r')"; return; }
        cmp -s "$out.b" "$file" || { echo "body ($(wc -c <"$out.b") bytes) differs from the file"; return; }
    fi
    echo ok
}

# --- measuring ------------------------------------------------------------------------------

# ROWS: "key|label|rps|p99ms|errors|front CPU µs/req|MiB/s|body bytes|connections|checks"
# checks: "ok" or what the curl checks found wrong (before the warm-up, during it, after the run).

# measure KEY LABEL URL FILE GZIP FRONT_SID CONNECTIONS : check the answer, warm up while checking it
# again and again with curl (the warm-up is thrown away, so the checks under load cost the
# measurement nothing), then one measured wrk run; CPU per request of the front's whole session;
# one last check after it.
measure() {
    local key=$1 label=$2 url=$3 file=$4 gz=$5 front_sid=$6 CONNECTIONS=$7   # local: the wrk helpers read it
    local raw="$OUT/${OUT_PREFIX}wrk-$key.txt" base="$TMP/check-$key" result checks="" bytes before cpu warm n=0 bad=0
    local -a wrk_args=()
    [ "$gz" = 1 ] && wrk_args=(-H 'Accept-Encoding: gzip')

    result=$(check "$url" "$file" "$gz" "$base")
    tr -d '\r' <"$base.h" | sed '/^$/d' >"$OUT/${OUT_PREFIX}headers-$key.txt"
    bytes=$(wc -c <"$base.b")
    [ "$result" = ok ] || checks="before the run: $result"
    log "$label: check: $result ($bytes body bytes$([ "$gz" = 1 ] && echo ", gzipped"))"

    warm_up "$label" "$url" ${wrk_args[@]+"${wrk_args[@]}"} &
    warm=$!
    HELPERS+=("$warm")
    while alive "$warm"; do
        result=$(check "$url" "$file" "$gz" "$base-load")
        n=$((n + 1))
        if [ "$result" != ok ]; then
            bad=$((bad + 1))
            [ "$bad" = 1 ] && log "$label: check under load: $result"
        fi
    done
    wait "$warm"
    [ "$bad" = 0 ] || checks="${checks:+$checks; }during the warm-up: $bad of $n wrong"
    log "$label: checks during the warm-up: $((n - bad)) of $n ok"

    before=$(session_cpu_ticks "$front_sid")
    wrk_measured "$label" "$url" "$raw" ${wrk_args[@]+"${wrk_args[@]}"}
    cpu=$(cpu_us_per_request "$before" "$(session_cpu_ticks "$front_sid")" "$raw")
    wrk_parse "$raw"

    result=$(check "$url" "$file" "$gz" "$base-after")
    [ "$result" = ok ] || checks="${checks:+$checks; }after the run: $result"

    ROWS+=("$key|$label|$WRK_RPS|$WRK_P99|$WRK_ERRORS|$cpu|$WRK_MIBS|$bytes|$CONNECTIONS|${checks:-ok}")
    log "$label: $WRK_RPS req/s, p99 $WRK_P99 ms, $WRK_ERRORS errors, front CPU $cpu µs/request," \
        "$WRK_MIBS MiB/s, checks ${checks:-ok}"
    if [ "$WRK_ERRORS" != 0 ]; then
        log "$label: ERRORS under load:"
        grep -E 'Socket errors|Non-2xx' "$raw" >&2 || true
    fi
}

# rows PREFIX NAME PORT SID : the three rows against the front on PORT.
rows() {
    local p=$1 name=$2 base="http://127.0.0.1:$3" sid=$4
    measure "$p-1k" "$name, 1 KiB file" "$base/k1.txt" "$DIR/k1.txt" 0 "$sid" "$CONNECTIONS"
    measure "$p-1m" "$name, 1 MiB file" "$base/m1.bin" "$DIR/m1.bin" 0 "$sid" "$CONNECTIONS_1M"
    measure "$p-gz64" "$name, 64 KiB text gzipped" "$base/t64.txt" "$DIR/t64.txt" 1 "$sid" "$CONNECTIONS"
}

front_nginx() {   # front_nginx [cache] : nginx, 1 worker, root $DIR, gzip level 1 for text/plain; "cache": open_file_cache, 1 KiB row only
    local port master worker cache=${1:-}
    port=$(free_port)
    start_nginx_with "nginx${cache:+-cache}" "$port" "    include $NGINX_CONF_DIR/mime.types;${cache:+
    open_file_cache max=1000 inactive=20s;}
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    gzip on;
    gzip_comp_level $GZIP_LEVEL;
    gzip_types text/plain;
    gzip_min_length 256;" "            root $DIR;"
    master=$LAST_PID
    wait_ready "http://127.0.0.1:$port/k1.txt" "$DIR/k1.txt"
    worker=$(children "$master")
    [ "$(echo "$worker" | wc -w)" = 1 ] || { echo "nginx $master: expected one worker, found: $worker" >&2; exit 1; }
    if [ -n "$cache" ]; then
        measure N-1kc "nginx (1 worker, open_file_cache), 1 KiB file" "http://127.0.0.1:$port/k1.txt" "$DIR/k1.txt" 0 "$master" "$CONNECTIONS"
    else
        rows N "nginx (1 worker)" "$port" "$master"
    fi
    stop_server "$master"
}

front_keel() {   # front_keel [cache] : keel, 1 event loop, static route / → $DIR, gzip level 1 for text/plain; "cache": [open_file_cache], 1 KiB row only
    local port pid cache=${1:-} conf="$TMP/keel${1:+-cache}.toml"
    port=$(free_port)
    cat >"$conf" <<EOF
$([ -n "$cache" ] && printf '[open_file_cache]\nmax = 1000\ninactive = "20s"\n')
[[listen]]
address = "127.0.0.1:$port"

[log]
access = "off"

[gzip]
enabled = true
level = $GZIP_LEVEL
min_length = 256
types = ["text/plain"]

[[route]]
path = "/"
static = "$DIR"
EOF
    "$KEEL" check --config "$conf" >"$TMP/keel-check.out" 2>&1 || { cat "$TMP/keel-check.out" >&2; exit 1; }
    start "keel${cache:+-cache}" TERM "$KEEL" --config "$conf" --event-loops 1
    pid=$LAST_PID
    wait_ready "http://127.0.0.1:$port/k1.txt" "$DIR/k1.txt"
    if [ -n "$cache" ]; then
        measure K-1kc "keel (1 event loop, open_file_cache), 1 KiB file" "http://127.0.0.1:$port/k1.txt" "$DIR/k1.txt" 0 "$pid" "$CONNECTIONS"
    else
        rows K "keel (1 event loop)" "$port" "$pid"
    fi
    stop_server "$pid"
}

# --- report ---------------------------------------------------------------------------------

report() {
    local r key label rps p99 errors cpu mibs bytes conns checks
    echo "| row | requests/s | p99 (ms) | errors | front CPU µs/req | transfer (MiB/s) | body bytes | connections | checks |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    for r in ${ROWS[@]+"${ROWS[@]}"}; do
        IFS='|' read -r key label rps p99 errors cpu mibs bytes conns checks <<<"$r"
        [ "$errors" = 0 ] || errors="**$errors**"
        [ "$checks" = ok ] || checks="**$checks**"
        echo "| $key. $label | $rps | $p99 | $errors | $cpu | $mibs | $bytes | $conns | $checks |"
    done
    echo
    echo "| keel ÷ nginx | requests/s (higher is better) | goal | met | p99 (lower is better) | front CPU µs/req (lower is better) | transfer (higher is better) |"
    echo "| --- | ---: | ---: | --- | ---: | ---: | ---: |"
    ratio_line "64 KiB text gzipped (K-gz64 / N-gz64)" gz64 1.0
    ratio_line "1 KiB file (K-1k / N-1k)" 1k 0.9
    ratio_line "1 MiB file (K-1m / N-1m)" 1m 0.9
    ratio_line "1 KiB file, open_file_cache on both (K-1kc / N-1kc)" 1kc 0.9
    gzip_note
    problems_note
}

ratio_line() {   # ratio_line LABEL ROW GOAL : K-ROW / N-ROW for rps (against GOAL), p99, front CPU, transfer
    local k="K-$2" n="N-$2" kr nr
    kr=$(field "$k" 3) nr=$(field "$n" 3)
    [ -n "$kr" ] && [ -n "$nr" ] || return 0
    awk -v l="$1" -v g="$3" -v kr="$kr" -v nr="$nr" -v kp="$(field "$k" 4)" -v np="$(field "$n" 4)" \
        -v kc="$(field "$k" 6)" -v nc="$(field "$n" 6)" -v km="$(field "$k" 7)" -v nm="$(field "$n" 7)" \
        -v clean="$( [ "$(field "$k" 5)$(field "$n" 5)" = 00 ] && [ "$(field "$k" 10)$(field "$n" 10)" = okok ] && echo 1)" '
        function r(a, b) { return (a + 0 > 0 && b + 0 > 0) ? sprintf("%.2f×", a / b) : "-" }
        BEGIN {
            met = (nr + 0 > 0 && sprintf("%.2f", kr / nr) + 0 >= g + 0) ? "yes" : "**no**"
            if (clean != 1) met = met " (rows flagged)"
            printf "| %s | **%s** | ≥ %.1f× | %s | %s | %s | %s |\n", l, r(kr, nr), g, met, r(kp, np), r(kc, nc), r(km, nm)
        }'
}

gzip_note() {   # the compressed size of t64.txt each front sent
    local nb kb
    nb=$(field N-gz64 8) kb=$(field K-gz64 8)
    [ -n "$nb" ] && [ -n "$kb" ] || return 0
    echo
    awk -v n="$nb" -v k="$kb" -v level="$GZIP_LEVEL" 'BEGIN {
        printf "t64.txt (65536 bytes) gzipped at level %d: nginx sent %d bytes (%.1f %%), keel %d bytes (%.1f %%); keel ÷ nginx %.3f×.\n",
            level, n, n * 100 / 65536, k, k * 100 / 65536, k / n }'
}

problems_note() {   # wrk's error lines and failed checks of every row that had any
    local r key
    for r in ${ROWS[@]+"${ROWS[@]}"}; do
        key=${r%%|*}
        if [ "$(field "$key" 5)" != 0 ]; then
            echo
            echo "**Row $key had errors under load** (wrk, \`bench/.out/${OUT_PREFIX}wrk-$key.txt\`):"
            echo
            grep -E 'Socket errors|Non-2xx' "$OUT/${OUT_PREFIX}wrk-$key.txt" | sed 's/^ */    /'
        fi
        if [ "$(field "$key" 10)" != ok ]; then
            echo
            echo "**Row $key answered wrongly:** $(field "$key" 10)"
        fi
    done
}

# --- main -----------------------------------------------------------------------------------

install_tools
build
nginx_conf_dir
prepare_out
rm -f "$OUT/${OUT_PREFIX}"headers-*.txt "$OUT/${OUT_PREFIX}"log-*.log "$OUT/${OUT_PREFIX}"conf-*
make_files

front_nginx
front_keel
front_nginx cache
front_keel cache

save_cmds
for f in "$TMP"/*.log; do cp "$f" "$OUT/${OUT_PREFIX}log-$(basename "$f")"; done   # servers' stderr
cp "$TMP/nginx/nginx.conf" "$OUT/${OUT_PREFIX}conf-nginx.conf"
cp "$TMP/keel.toml" "$OUT/${OUT_PREFIX}conf-keel.toml"

{
    echo "# Keel bench: keel vs nginx, static files and gzip"
    echo
    report
    echo
    environment "- keel: $KEEL" "- source: $(source_state)"
    echo "- files: k1.txt 1024 bytes of log-like text, m1.bin 1048576 bytes from /dev/urandom, t64.txt 65536 bytes of log-like text (fixed seed)"
    echo "- 1 MiB rows: \`-c$CONNECTIONS_1M\`; gz64 rows: \`-H 'Accept-Encoding: gzip'\`; configs: \`bench/.out/${OUT_PREFIX}conf-nginx.conf\`, \`bench/.out/${OUT_PREFIX}conf-keel.toml\`"
    headers_note "response headers (\`curl -D -\`; the gz64 rows with \`Accept-Encoding: gzip\`, the others without):"
} | publish static

echo
report
echo
echo "Written to bench/.out/static-latest.md (raw wrk output: bench/.out/static-wrk-*.txt)"
