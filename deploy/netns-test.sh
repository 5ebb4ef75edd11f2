#!/usr/bin/env bash
# keel in front of two keel-pool hosts over TCP uwsgi, each host in its own network namespace (as root):
#
#   front (keel, 10.213.1.1 / 10.213.2.1) ──veth── pool1 (keel-pool, 10.213.1.2:3031)
#                                         ──veth── pool2 (keel-pool, 10.213.2.2:3031)
#
# Checks, each a PASS/FAIL line: requests are balanced over both hosts; a host whose link is cut, or whose pool is
# stopped, under load loses no request keel could retry, passive health (max_fails / fail_timeout) takes it out and
# brings it back; a HUP of one pool host under load drops nothing. Namespaces, links and processes are removed on
# any exit. Bounded: every wait has a deadline, every load a request count and curl --max-time.
#
#   deploy/netns-test.sh                      # KEEL=… KEEL_POOL=… for other binaries (default: the debug build)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
KEEL=${KEEL:-$root/.build/debug/keel}
KEEL_POOL=${KEEL_POOL:-$root/.build/debug/keel-pool}
[ "$(id -u)" = 0 ] || { echo "netns-test.sh: run as root (it makes network namespaces)" >&2; exit 2; }
[ -x "$KEEL" ] && [ -x "$KEEL_POOL" ] || { echo "netns-test.sh: build keel and keel-pool first (swift build)" >&2; exit 2; }

id=$$
front=kfront$id; pool1=kpool1$id; pool2=kpool2$id
work=$(mktemp -d /tmp/keel-netns.XXXXXX)
pids=()
failures=0
started=$(date +%s)

cleanup() {
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    for ns in "$front" "$pool1" "$pool2"; do ip netns pids "$ns" 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true; ip netns del "$ns" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

in_front() { ip netns exec "$front" "$@"; }
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...: polls every 0.1 s
    local deadline=$(( $(date +%s) + $1 )) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$(date +%s)" -lt "$deadline" ] || { echo "netns-test.sh: timed out waiting for $what" >&2; return 1; }
        sleep 0.1
    done
}

# --- the three hosts -------------------------------------------------------------------------------------------
for ns in "$front" "$pool1" "$pool2"; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
for n in 1 2; do
    pool=$([ $n = 1 ] && echo "$pool1" || echo "$pool2")
    ip link add "kf$n$id" netns "$front" type veth peer name "kp$n$id" netns "$pool"
    ip -n "$front" addr add "10.213.$n.1/24" dev "kf$n$id"; ip -n "$front" link set "kf$n$id" up
    ip -n "$pool" addr add "10.213.$n.2/24" dev "kp$n$id"; ip -n "$pool" link set "kp$n$id" up
done

# Each host names itself in its answers.
cat > "$work/app.py" <<'PY'
import os
def application(environ, start_response):
    body = os.environ["POOL_HOST"].encode()  # no newline: curl's " %{http_code}" follows on the same line
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
PY
start_pool() {  # start_pool N: keel-pool on 10.213.N.2:3031 in its namespace
    local n=$1 ns; ns=$([ "$1" = 1 ] && echo "$pool1" || echo "$pool2")
    ip netns exec "$ns" env POOL_HOST="pool$n" KEEL_POOL_ALLOW_ROOT=1 "$KEEL_POOL" --socket "10.213.$n.2:3031" \
        --wsgi-file "$work/app.py" --processes 2 --threads 4 --pidfile "$work/pool$n.pid" >> "$work/pool$n.log" 2>&1 &
    pids+=("$!")
    wait_for 20 "pool$n to accept" in_front bash -c "exec 3<>/dev/tcp/10.213.$n.2/3031"
}
start_pool 1
start_pool 2

cat > "$work/keel.toml" <<TOML
[[listen]]
address = "127.0.0.1:8080"
[log]
access = "$work/access.log"
error = "-"
[upstream.pools]
servers = ["10.213.1.2:3031", "10.213.2.2:3031"]
max_fails = 1
fail_timeout = "3s"
connect_timeout = "1s"
read_timeout = "5s"
[[route]]
path = "/"
uwsgi = "pools"
TOML
in_front "$KEEL" --config "$work/keel.toml" > "$work/keel.log" 2>&1 &
pids+=("$!")
wait_for 20 "keel to serve" in_front curl -sf --max-time 2 http://127.0.0.1:8080/

# load N FILE: N requests, 4 at a time, each "body status" on a line of FILE (one echo per request, so the four
# never interleave; bounded by --max-time).
load() {
    in_front bash -c '
        for i in $(seq 1 '"$1"'); do
            (line=$(curl -s --max-time 10 -w " %{http_code}" http://127.0.0.1:8080/); echo "$line") &
            [ $((i % 4)) = 0 ] && wait
        done; wait' > "$2" 2>/dev/null
}
count() { grep -c -- "$1" "$2" || true; }

# --- 1. balance ------------------------------------------------------------------------------------------------
load 200 "$work/balance"
one=$(count "^pool1 200" "$work/balance"); two=$(count "^pool2 200" "$work/balance")
if [ "$one" -ge 50 ] && [ "$two" -ge 50 ] && [ $((one + two)) = 200 ]; then pass "balance: 200 requests, pool1 $one, pool2 $two"
else fail "balance: pool1 $one, pool2 $two of 200 (expected both ≥ 50, all 200)"; fi

# --- 2. a host goes down under load, comes back ----------------------------------------------------------------
host_down_round() {  # host_down_round HOW: "link" cuts pool1's link, "stop" TERMs its keel-pool
    local how=$1 file="$work/down-$1" began
    load 300 "$file" & local loader=$!
    sleep 0.5
    began=$(date +%s%N)
    if [ "$how" = link ]; then ip -n "$pool1" link set "kp1$id" down; else kill -TERM "$(cat "$work/pool1.pid")"; fi
    wait "$loader"
    local ok bad
    ok=$(count " 200$" "$file"); bad=$(( $(wc -l < "$file") - ok ))
    if [ "$bad" = 0 ] && [ "$ok" = 300 ]; then pass "pool1 down ($how) under load: 300 of 300 answered 200"
    else fail "pool1 down ($how) under load: $ok of 300 answered 200; the others: $(grep -v " 200$" "$file" | sort | uniq -c | tr '\n' ';')"; fi
    # Passive health: once marked down, pool1 gets no requests, so none waits for its connect timeout.
    in_front bash -c 'for i in $(seq 1 40); do curl -s --max-time 5 -w " %{time_total}\n" http://127.0.0.1:8080/; done' > "$file.after"
    local slow; slow=$(awk '$2 > 0.5' "$file.after" | wc -l)
    if [ "$(count "^pool2" "$file.after")" = 40 ] && [ "$slow" -le 1 ]; then pass "passive health ($how): pool1 out, 40 of 40 to pool2 ($slow slower than 0.5 s)"
    else fail "passive health ($how): $(count "^pool2" "$file.after") of 40 to pool2, $slow slower than 0.5 s"; fi
    # Back: the link up or the pool restarted; after fail_timeout keel tries pool1 again.
    if [ "$how" = link ]; then ip -n "$pool1" link set "kp1$id" up; else start_pool 1; fi
    if wait_for 20 "pool1 to serve again" in_front bash -c 'curl -s --max-time 2 http://127.0.0.1:8080/ | grep -q pool1'; then
        pass "pool1 back ($how): serving again $(( ($(date +%s%N) - began) / 1000000 )) ms after it went down"
    else fail "pool1 back ($how): no answer from pool1 within 20 s"; fi
}
host_down_round link
host_down_round stop

# --- 3. HUP of one pool host under load ------------------------------------------------------------------------
load 300 "$work/hup" & loader=$!
sleep 0.3
kill -HUP "$(cat "$work/pool2.pid")"
wait "$loader"
ok=$(count " 200$" "$work/hup")
if [ "$ok" = 300 ]; then pass "HUP of pool2 under load: 300 of 300 answered 200"
else fail "HUP of pool2 under load: $ok of 300; the others: $(grep -v " 200$" "$work/hup" | sort | uniq -c | tr '\n' ';')"; fi
grep -q "HUP" "$work/pool2.log" || fail "pool2's log shows no HUP reload"

echo "keel's error lines:"; grep "\[error\]" "$work/keel.log" | sed 's/^/  /' | head -12
echo "netns-test.sh: $failures failed, $(( $(date +%s) - started )) s"
[ "$failures" = 0 ]
