#!/usr/bin/env bash
# The lifecycle scenario of issue 8: nginx → keel-pool under 64 connections for DURATION (60 s), with
# --max-requests 200, a HUP every 5 s and 1 % of requests crashing their worker (`flaky` app), against
# the same load without disruption. Reports total requests, failures (goal: only the crashing requests
# fail) and p99 for both. Loopback only; every process started is stopped on exit.
#
#   bench/lifecycle.sh              # nginx in front (uwsgi_pass: a connection per request)
#   FRONT=keel bench/lifecycle.sh   # keel in front, on the keel wire (persistent connections)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
DURATION=${DURATION:-60s}
CONNECTIONS=${CONNECTIONS:-64}
FRONT=${FRONT:-nginx}
case "$FRONT" in nginx | keel) ;; *) echo "FRONT=$FRONT: give nginx or keel" >&2; exit 2 ;; esac
command -v wrk >/dev/null && command -v nginx >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk nginx-light >/dev/null
}
swift build -c release --product keel-pool >&2
[ "$FRONT" = keel ] && swift build -c release --product keel >&2
KEEL_POOL="$(swift build -c release --show-bin-path)/keel-pool"
KEEL="$(swift build -c release --show-bin-path)/keel"
TMP=$(mktemp -d /tmp/keel-lifecycle.XXXXXX)
PIDS=()
cleanup() {
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill -TERM "$pid" 2>/dev/null || true; done
    sleep 1
    for pid in ${PIDS[@]+"${PIDS[@]}"}; do kill -KILL "$pid" 2>/dev/null || true; done
    [ -f "$TMP/nginx.pid" ] && kill -QUIT "$(cat "$TMP/nginx.pid")" 2>/dev/null || true
    rm -rf "$TMP"
}
trap cleanup EXIT
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$TMP/nginx.conf" <<CONF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes 1;
error_log $TMP/nginx-error.log;
pid $TMP/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $TMP/cb; proxy_temp_path $TMP/p; fastcgi_temp_path $TMP/f; uwsgi_temp_path $TMP/u; scgi_temp_path $TMP/s;
    server { listen 127.0.0.1:$PORT; location / { include /etc/nginx/uwsgi_params; uwsgi_pass unix:$TMP/app.sock; } }
}
CONF

run() {   # run LABEL POOL_FLAGS... : start the pool and nginx, load it, print one result line
    local label=$1; shift
    "$KEEL_POOL" --socket "$TMP/app.sock" --processes 2 --threads 1 --allow-root "$@" >"$TMP/$label-pool.log" 2>&1 &
    local pool=$!
    PIDS+=("$pool")
    local front
    if [ "$FRONT" = keel ]; then
        "$KEEL" --listen "127.0.0.1:$PORT" --uwsgi "unix:$TMP/app.sock" --event-loops 1 --access-log off \
            >"$TMP/$label-keel.log" 2>&1 &
    else
        nginx -c "$TMP/nginx.conf" -p "$TMP" -g 'daemon off;' &
    fi
    front=$!
    PIDS+=("$front")
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/" >/dev/null && break; sleep 0.2; done
    local hup=""
    if [ "$label" = disrupted ]; then
        ( while kill -0 "$pool" 2>/dev/null; do sleep 5; kill -HUP "$pool" 2>/dev/null || true; done ) &
        hup=$!
    fi
    local script=()
    [ "$label" = disrupted ] && script=(-s bench/lua/one-percent-crash.lua)
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency ${script[@]+"${script[@]}"} "http://127.0.0.1:$PORT/" >"$TMP/$label.wrk"
    [ -n "$hup" ] && kill "$hup" 2>/dev/null || true
    local requests failures p99 crashes recycles reloads
    requests=$(awk '/requests in/ { print $1 }' "$TMP/$label.wrk")
    failures=$(awk '/Socket errors:/ { gsub(/,/, ""); n += $4 + $6 + $8 + $10 } /Non-2xx or 3xx responses:/ { n += $5 } END { print n + 0 }' "$TMP/$label.wrk")
    p99=$(awk '$1 == "99%" { print $2 }' "$TMP/$label.wrk")
    crashes=$(awk '/crash requests sent:/ { print $4 }' "$TMP/$label.wrk")
    recycles=$(grep -c "reached --max-requests: recycling" "$TMP/$label-pool.log" || true)
    reloads=$(grep -c "HUP: graceful reload" "$TMP/$label-pool.log" || true)
    echo "| $label | ${requests:-0} | $failures | ${crashes:-0} | $p99 | $recycles | $reloads |"
    if [ "$FRONT" = keel ]; then kill -TERM "$front"; wait "$front" 2>/dev/null || true; else kill -QUIT "$(cat "$TMP/nginx.pid")"; fi
    kill -TERM "$pool"; wait "$pool" 2>/dev/null || true
    sleep 1
}

echo "| load | requests | failed (non-2xx + socket errors) | crash requests sent | p99 | recycles | HUP reloads |"
echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"
run baseline --app flaky
run disrupted --app flaky --max-requests 200
echo
front_label=$([ "$FRONT" = keel ] && echo "keel 1 event loop (keel wire)" || echo "nginx 1 worker")
echo "- $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) CPUs, wrk -t2 -c$CONNECTIONS -d$DURATION, $front_label → keel-pool 2 processes × 1 thread"
