#!/usr/bin/env bash
# keel TLS vs nginx TLS (issue 5): each terminating TLS in front of the same keel-pool `hello`
# backend (uwsgi over a unix socket), one ECDSA P-256 certificate for both, measured one after the
# other in one run on loopback. Three shapes:
#   keep-alive  wrk over HTTPS, 64 connections kept open (record encryption + the proxy path)
#   resumed     wrk with "Connection: close": a new TCP connection per request; wrk resumes its TLS
#               session (TLS 1.3 PSK + ECDHE), as the resumption check against nginx's
#               $ssl_session_reused shows
#   full        the same with resumption off on both servers (no tickets, no cache): every request
#               is a new TCP connection and a full handshake with an ECDSA P-256 signature
# Reports requests/s, p99, errors and the front's CPU per request. See bench/README.md.
#
#   bench/tls.sh
#   KEEL=... KEEL_POOL=... bench/tls.sh     # prebuilt binaries: no release build
set -euo pipefail

KEEL=${KEEL:-}
KEEL_POOL=${KEEL_POOL:-}
OUT_PREFIX="tls-"

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SCRATCH="$ROOT/.build-bench"
INVOCATION="DURATION=$DURATION CONNECTIONS=$CONNECTIONS WRK_THREADS=$WRK_THREADS WARMUP=$WARMUP${KEEL:+ KEEL=$KEEL}${KEEL_POOL:+ KEEL_POOL=$KEEL_POOL} bench/tls.sh"
[ "$#" = 0 ] || { echo "bench/tls.sh takes no arguments; set DURATION, CONNECTIONS, KEEL, KEEL_POOL in the environment" >&2; exit 2; }

install_tools
command -v openssl >/dev/null || apt_install openssl
keel_binaries
nginx_conf_dir
setup_tmp keel-tls
prepare_out
SOCK="$TMP/app.sock"

# One certificate for both fronts: ECDSA P-256, self-signed for localhost.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$TMP/key.pem" -out "$TMP/cert.pem" \
    -days 2 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>/dev/null

pool_flags=(--socket "$SOCK" --processes 2 --threads 1 --app hello)
[ "$(id -u)" = 0 ] && pool_flags+=(--allow-root)
start keel-pool TERM "$KEEL_POOL" "${pool_flags[@]}"
POOL_SID=$LAST_PID
for _ in $(seq 1 200); do [ -S "$SOCK" ] && break; sleep 0.1; done

# measure KEY LABEL URL FRONT_SID [WRK_ARG...] : warm-up, then the measured run; CPU µs/request of the front.
measure() {
    local key=$1 label=$2 url=$3 front_sid=$4 raw="$OUT/${OUT_PREFIX}wrk-$1.txt" before cpu
    shift 4
    warm_up "$label" "$url" "$@"
    before=$(session_cpu_ticks "$front_sid")
    wrk_measured "$label" "$url" "$raw" "$@"
    cpu=$(cpu_us_per_request "$before" "$(session_cpu_ticks "$front_sid")" "$raw")
    wrk_parse "$raw"
    ROWS+=("$key|$label|$WRK_RPS|$WRK_P99|$WRK_ERRORS|$cpu")
    log "$label: $WRK_RPS req/s, p99 $WRK_P99 ms, $WRK_ERRORS errors, front CPU $cpu µs/request"
}

nginx_tls_lines="    ssl_certificate $TMP/cert.pem;
    ssl_certificate_key $TMP/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;"
nginx_no_resumption="    ssl_session_tickets off;
    ssl_session_cache off;"

# keel's side of the same settings (flags have no [tls] options): a config per mode.
keel_config() {   # keel_config PORT RESUMPTION(on|off) > FILE
    cat <<TOML
[[listen]]
address = "127.0.0.1:$1"
tls = true
[tls]
$([ "$2" = off ] && printf 'session_tickets = false\nsession_cache_size = 0\n')
[[tls.certificate]]
cert = "$TMP/cert.pem"
key = "$TMP/key.pem"
[log]
access = "off"
[[route]]
uwsgi = "unix:$SOCK"
TOML
}

# check_resumption NAME EXTRA_NGINX_LINES : counts reused sessions in a short logged wrk run (Connection:
# close) against nginx; sets CHECK_FULL and CHECK_RESUMED.
check_resumption() {
    local name=$1 extra=$2 port
    port=$(free_port)
    # The http block has access_log off; the location's own access_log logs this run.
    NGINX_LISTEN_OPTS=ssl start_nginx_with "nginx-$name" "$port" "$nginx_tls_lines
$extra
    log_format reuse \$ssl_session_reused;" "            access_log $TMP/$name.log reuse;
            include $NGINX_CONF_DIR/uwsgi_params;
            uwsgi_pass unix:$SOCK;"
    local pid=$LAST_PID
    wait_ready "https://127.0.0.1:$port/"
    wrk -t1 -c4 -d1s -H 'Connection: close' "https://127.0.0.1:$port/" >/dev/null
    stop_server "$pid"
    CHECK_RESUMED=$(grep -c '^r$' "$TMP/$name.log" || true)
    CHECK_FULL=$(grep -c '^\.$' "$TMP/$name.log" || true)
    log "$name: wrk with Connection: close made $CHECK_FULL full handshakes, $CHECK_RESUMED resumed"
}

row_nginx() {   # row_nginx KEY LABEL RESUMPTION(on|off) [WRK_ARG...]
    local key=$1 label=$2 resumption=$3 port pid lines=$nginx_tls_lines
    shift 3
    [ "$resumption" = off ] && lines+=$'\n'"$nginx_no_resumption"
    port=$(free_port)
    NGINX_LISTEN_OPTS=ssl start_nginx_with "nginx-$key" "$port" "$lines" "            include $NGINX_CONF_DIR/uwsgi_params;
            uwsgi_pass unix:$SOCK;"
    pid=$LAST_PID
    wait_ready "https://127.0.0.1:$port/"
    measure "$key" "$label" "https://127.0.0.1:$port/" "$pid" "$@"
    stop_server "$pid"
}

row_keel() {   # row_keel KEY LABEL RESUMPTION(on|off) [WRK_ARG...]
    local key=$1 label=$2 resumption=$3 port pid
    shift 3
    port=$(free_port)
    keel_config "$port" "$resumption" >"$TMP/keel-$key.toml"
    start "keel-$key" TERM "$KEEL" --config "$TMP/keel-$key.toml" --event-loops 1
    pid=$LAST_PID
    wait_ready "https://127.0.0.1:$port/"
    measure "$key" "$label" "https://127.0.0.1:$port/" "$pid" "$@"
    stop_server "$pid"
}

check_resumption resumption-on ""
RESUMED_ON="$CHECK_FULL full, $CHECK_RESUMED resumed"
check_resumption resumption-off "$nginx_no_resumption"
RESUMED_OFF="$CHECK_FULL full, $CHECK_RESUMED resumed"
row_nginx N "nginx TLS (1 worker) → keel-pool, keep-alive" on
row_keel K "keel TLS (1 event loop) → keel-pool, keep-alive" on
row_nginx NR "nginx TLS, new connection per request, session resumed" on -H 'Connection: close'
row_keel KR "keel TLS, new connection per request, session resumed" on -H 'Connection: close'
row_nginx NF "nginx TLS, new connection per request, full handshake (resumption off)" off -H 'Connection: close'
row_keel KF "keel TLS, new connection per request, full handshake (resumption off)" off -H 'Connection: close'
save_cmds

ratio() { field_ratio "$1" "$2" 3; }
{
    echo "| row | requests/s | p99 (ms) | errors | front CPU µs/req |"
    echo "| --- | ---: | ---: | ---: | ---: |"
    for r in "${ROWS[@]}"; do
        IFS='|' read -r key label rps p99 errors cpu <<<"$r"
        echo "| $key. $label | $rps | $p99 | $errors | $cpu |"
    done
    echo
    echo "| ratio | keel ÷ nginx | goal |"
    echo "| --- | ---: | ---: |"
    echo "| keep-alive requests/s (K / N) | $(ratio K N) | ≥ 1.0 |"
    echo "| new full handshakes/s (KF / NF) | $(ratio KF NF) | ≥ 1.0 |"
    echo "| new connections with resumed sessions/s (KR / NR) | $(ratio KR NR) | - |"
    echo
    echo "Resumption check (1 s of wrk -t1 -c4 with Connection: close against nginx, \$ssl_session_reused):"
    echo "default settings: $RESUMED_ON; with tickets and cache off: $RESUMED_OFF."
    echo
    environment "- OpenSSL: $(openssl version)" "- certificate: ECDSA P-256 (both fronts)"
} | publish tls
cat "$OUT/tls-latest.md"
