#!/usr/bin/env bash
# keel vs nginx over HTTP/2 (issue 18): each terminating TLS with ALPN h2 in front of the same keel-pool `hello`
# backend (uwsgi over a unix socket), one ECDSA P-256 certificate for both, one keel event loop against one nginx
# worker, measured one after the other in one run on loopback with h2load (10 connections × 10 streams; both
# fronts' requests-per-connection limits raised so h2load, which does not reconnect after GOAWAY, is not cut short).
# Reports requests/s, errors, mean request time and the front's CPU per request; then the front's memory per open
# stream: RSS while 1,000 streams (10 connections × 100) wait on a backend that sleeps, minus RSS idle.
# See bench/README.md.
#
#   bench/h2.sh
#   KEEL=... KEEL_POOL=... bench/h2.sh      # prebuilt binaries: no release build
#   REQUESTS=200000 DRIFT=0 bench/h2.sh     # h2load -n; DRIFT=0 skips nginx's second row
set -euo pipefail

KEEL=${KEEL:-}
KEEL_POOL=${KEEL_POOL:-}
REQUESTS=${REQUESTS:-100000}
DRIFT=${DRIFT:-1}
OUT_PREFIX="h2-"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCRATCH="$ROOT/.build-bench"
INVOCATION="REQUESTS=$REQUESTS DRIFT=$DRIFT${KEEL:+ KEEL=$KEEL}${KEEL_POOL:+ KEEL_POOL=$KEEL_POOL} bench/h2.sh"
[ "$#" = 0 ] || { echo "bench/h2.sh takes no arguments; set REQUESTS, DRIFT, KEEL, KEEL_POOL in the environment" >&2; exit 2; }
case "$DRIFT" in 0 | 1) ;; *) echo "DRIFT=$DRIFT: give 0 or 1" >&2; exit 2 ;; esac

install_tools
command -v openssl >/dev/null || apt_install openssl
command -v h2load >/dev/null || apt_install nghttp2-client
keel_binaries
nginx_conf_dir
setup_tmp keel-h2
prepare_out
SOCK="$TMP/app.sock"
SLEEP_SOCK="$TMP/sleep.sock"

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" \
    -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null

root_flag=()
[ "$(id -u)" = 0 ] && root_flag=(--allow-root)
start keel-pool TERM "$KEEL_POOL" --socket "$SOCK" --processes 2 --threads 1 --app hello "${root_flag[@]}"
# The memory rows hold 1,000 requests in the backend at once: 1,000 threads that sleep.
start keel-pool-sleep TERM "$KEEL_POOL" --socket "$SLEEP_SOCK" --processes 4 --threads 256 --app sleep \
    --listen 1024 "${root_flag[@]}"
for _ in $(seq 1 300); do [ -S "$SOCK" ] && [ -S "$SLEEP_SOCK" ] && break; sleep 0.1; done

# h2load_parse RAW : H2_RPS, H2_OK, H2_FAILED (failed + errored + timeout), H2_MEAN_MS from h2load's output.
h2load_parse() {
    H2_RPS=$(awk '/^finished in/ { gsub(",", "", $4); printf "%.0f", $4 }' "$1")
    H2_OK=$(awk '/^requests:/ { print $8 }' "$1")
    H2_FAILED=$(awk '/^requests:/ { print $10 + $12 + $14 }' "$1")
    H2_MEAN_MS=$(awk '/^time for request:/ { print $6 }' "$1")   # min max mean sd
    H2_MEAN_MS=$(to_ms "${H2_MEAN_MS:-0us}")
}

# measure KEY LABEL URL FRONT_SID : a warm-up of a tenth, then REQUESTS over 10 connections × 10 streams.
measure() {
    local key=$1 label=$2 url=$3 sid=$4 raw="$OUT/${OUT_PREFIX}h2load-$1.txt" before ticks
    log "$label: warm-up"
    h2load -n $((REQUESTS / 10)) -c 10 -m 10 "$url" >/dev/null
    before=$(session_cpu_ticks "$sid")
    log "$label: h2load -n $REQUESTS -c 10 -m 10"
    h2load -n "$REQUESTS" -c 10 -m 10 "$url" >"$raw"
    ticks=$(($(session_cpu_ticks "$sid") - before))
    h2load_parse "$raw"
    grep -q "Application protocol: h2" "$raw" || { echo "$label did not speak h2:" >&2; cat "$raw" >&2; exit 1; }
    local cpu
    cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$H2_OK" 'BEGIN { printf "%.1f", (n > 0 ? t * 1e6 / hz / n : 0) }')
    ROWS+=("$key|$label|$H2_RPS|$H2_MEAN_MS|$H2_FAILED|$cpu")
    log "$label: $H2_RPS req/s, mean $H2_MEAN_MS ms, $H2_FAILED failed, front CPU $cpu µs/request"
}

# rss_kib PID : resident set of one process.
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# per_stream KEY RSS_PID URL : RSS idle, then the peak while 1,000 streams wait 3 s on the sleep backend.
per_stream() {
    local key=$1 pid=$2 url=$3 idle peak=0 now raw="$OUT/${OUT_PREFIX}h2load-$1-streams.txt"
    idle=$(rss_kib "$pid")
    h2load -n 1000 -c 10 -m 100 "$url" >"$raw" &
    local load=$!
    while kill -0 "$load" 2>/dev/null; do
        now=$(rss_kib "$pid")
        [ "$now" -gt "$peak" ] && peak=$now
        sleep 0.1
    done
    wait "$load" || true
    h2load_parse "$raw"
    STREAM_ROWS+=("$key|$idle|$peak|$(awk -v a="$peak" -v b="$idle" 'BEGIN { printf "%.1f", (a - b) / 1000 }')|$H2_OK|$H2_FAILED")
    log "$key: RSS idle $idle KiB, peak $peak KiB with 1,000 streams open ($H2_OK ok, $H2_FAILED failed)"
}
STREAM_ROWS=()

nginx_lines="    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    http2_max_concurrent_streams 128;
    keepalive_requests 10000000;"
nginx_location="            include $NGINX_CONF_DIR/uwsgi_params;
            uwsgi_read_timeout 30s;
            location /sleep { include $NGINX_CONF_DIR/uwsgi_params; uwsgi_pass unix:$SLEEP_SOCK; }
            uwsgi_pass unix:$SOCK;"

keel_config() {   # keel_config PORT > FILE
    cat <<TOML
event_loops = 1
[[listen]]
address = "127.0.0.1:$1"
tls = true
[tls]
[[tls.certificate]]
cert = "$TMP/cert.pem"
key = "$TMP/key.pem"
[log]
access = "off"
[limits]
http2_max_requests = 10000000
[[route]]
path = "/sleep"
uwsgi = "unix:$SLEEP_SOCK"
[[route]]
path = "/"
uwsgi = "unix:$SOCK"
TOML
}

# nginx's worker is the process whose memory counts (the master only forks it).
nginx_worker() { pgrep -P "$1" | head -n 1; }

row_nginx() {   # row_nginx KEY LABEL [streams]
    local key=$1 label=$2 port pid
    port=$(free_port)
    NGINX_LISTEN_OPTS="ssl http2" NGINX_WORKER_CONNECTIONS=4096 start_nginx_with "nginx-$key" "$port" "$nginx_lines" "$nginx_location"
    pid=$LAST_PID
    wait_ready "https://127.0.0.1:$port/"
    measure "$key" "$label" "https://127.0.0.1:$port/" "$pid"
    [ "${3:-}" = streams ] && per_stream "$key" "$(nginx_worker "$pid")" "https://127.0.0.1:$port/sleep?ms=3000"
    stop_server "$pid"
}

row_keel() {   # row_keel KEY LABEL [streams]
    local key=$1 label=$2 port pid
    port=$(free_port)
    keel_config "$port" >"$TMP/keel-$key.toml"
    start "keel-$key" TERM "$KEEL" --config "$TMP/keel-$key.toml"
    pid=$LAST_PID
    wait_ready "https://127.0.0.1:$port/"
    measure "$key" "$label" "https://127.0.0.1:$port/" "$pid"
    [ "${3:-}" = streams ] && per_stream "$key" "$pid" "https://127.0.0.1:$port/sleep?ms=3000"
    stop_server "$pid"
}

row_nginx N "nginx TLS h2 (1 worker) → keel-pool" streams
row_keel K "keel TLS h2 (1 event loop) → keel-pool" streams
[ "$DRIFT" = 1 ] && row_nginx N2 "nginx again (drift check)"
save_cmds

{
    echo "| row | requests/s | mean request (ms) | failed | front CPU µs/req |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for r in "${ROWS[@]}"; do
        IFS='|' read -r key label rps mean failed cpu <<<"$r"
        echo "| $key. $label | $rps | $mean | $failed | $cpu |"
    done
    echo
    echo "| ratio | keel ÷ nginx | goal |"
    echo "| --- | ---: | ---: |"
    echo "| requests/s, 10 connections × 10 streams (K / N) | $(field_ratio K N 3) | ≥ 1.0 |"
    echo "| front CPU per request (K / N) | $(field_ratio K N 6) | - |"
    [ "$DRIFT" = 1 ] && echo "| nginx drift (N2 / N) | $(field_ratio N2 N 3) | ≈ 1.0 |"
    echo
    echo "Memory per open stream: \`h2load -n 1000 -c 10 -m 100\` on /sleep?ms=3000 (1,000 streams open at once,"
    echo "each waiting on a keel-pool thread); the front's RSS sampled every 100 ms (keel's process, nginx's worker)."
    echo
    echo "| front | RSS idle (KiB) | RSS peak (KiB) | KiB per stream | ok | failed |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: |"
    for r in "${STREAM_ROWS[@]}"; do
        IFS='|' read -r key idle peak per ok failed <<<"$r"
        echo "| $key | $idle | $peak | $per | $ok | $failed |"
    done
    echo
    LOAD_LINE="- each row: \`h2load -n $((REQUESTS / 10)) -c 10 -m 10 URL\` (warm-up, discarded), then \`h2load -n $REQUESTS -c 10 -m 10 URL\`" \
        environment "- OpenSSL: $(openssl version)" "- h2load: $(h2load --version 2>&1 | head -n 1)" "- certificate: ECDSA P-256 (both fronts)"
} | publish h2
cat "$OUT/h2-latest.md"
