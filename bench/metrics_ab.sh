#!/usr/bin/env bash
# Issue 17's metrics overhead, interleaved: keel's CPU per request with metrics off (K) and on (KM: [metrics] and
# [status]), the configs of front.sh's rows K and KM, both keels in front of one keel-pool, ROUNDS alternations of
# wrk -t2 -c64 -dD on each (keel's CPU ticks from /proc per round). Goal: KM ÷ K ≤ 1.03.
#
#   bench/metrics_ab.sh                          # builds release into .build-bench
#   BIN=$PWD/.build-bench/release ROUNDS=5 bench/metrics_ab.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ -z "${BIN:-}" ]; then
    swift build -c release --scratch-path .build-bench >&2
    BIN=$PWD/.build-bench/release
fi
ROUNDS=${ROUNDS:-3}
D=${D:-8s}
TMP=$(mktemp -d /tmp/abm.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; sleep 1; rm -rf $TMP' EXIT
$BIN/keel-pool --socket $TMP/app.sock --processes 2 --threads 1 --app hello --allow-root >$TMP/pool.log 2>&1 &
sleep 1
pa=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pb=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
pm=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
base='[upstream.app]\nservers = ["unix:%s"]\nkeepalive = 128\n[[route]]\npath = "/"\nuwsgi = "app"\n[log]\naccess = "off"\n'
printf "[[listen]]\naddress = \"127.0.0.1:$pa\"\n$base" $TMP/app.sock > $TMP/a.toml
printf "[[listen]]\naddress = \"127.0.0.1:$pb\"\n$base[metrics]\nlisten = \"127.0.0.1:$pm\"\n[status]\npath = \"/keel/status\"\n" $TMP/app.sock > $TMP/b.toml
$BIN/keel --config $TMP/a.toml --event-loops 1 >$TMP/a.log 2>&1 & A=$!
$BIN/keel --config $TMP/b.toml --event-loops 1 >$TMP/b.log 2>&1 & B=$!
sleep 1
ticks() { awk '{print $14+$15}' /proc/$1/stat; }
run() { # run PID PORT
    wrk -t2 -c64 -d2s http://127.0.0.1:$2/ >/dev/null
    local t0 t1 n
    t0=$(ticks $1)
    n=$(wrk -t2 -c64 -d$D http://127.0.0.1:$2/ | awk '/requests in/ {print $1}')
    t1=$(ticks $1)
    awk -v t=$((t1 - t0)) -v n=$n -v hz=$(getconf CLK_TCK) 'BEGIN { printf "%.1f µs/req (%d req)", t / hz * 1e6 / n, n }'
}
for r in $(seq $ROUNDS); do
    echo "round $r: K $(run $A $pa)   KM $(run $B $pb)"
done
curl -s 127.0.0.1:$pm/metrics | grep -E '^keel_http_requests_total\{.*GET.*2xx' | head -2
