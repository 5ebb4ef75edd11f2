#!/usr/bin/env bash
# netns-test.sh: keel in front of two keel-pool hosts over TCP uwsgi, each host in its own network namespace.
#
#   deploy/netns-test.sh                # as root; KEEL=… KEEL_POOL=… for other binaries (default: the debug build)
#   KEEP=1 deploy/netns-test.sh         # keep the logs directory (printed at the end); everything else is removed
#   HANG=0 deploy/netns-test.sh         # without check 4 (a hung pool host)
#
#        namespace keel-front-PID                                  namespace keel-pool1-PID
#   curl ─▶ keel 127.0.0.1:8080   kf1-PID 10.213.1.1/24 ──veth── kp1-PID 10.213.1.2/24   keel-pool 0.0.0.0:3031
#                                 kf2-PID 10.213.2.1/24 ──veth── kp2-PID 10.213.2.2/24   keel-pool 0.0.0.0:3031
#                                                                  namespace keel-pool2-PID
#
# keel has one upstream group with both hosts (max_fails = 1, short fail/connect/read timeouts) and routes / to it.
# Each pool serves a tiny WSGI app that names its host (body and an X-Pool header; keel-pool's built-in apps cannot:
# hello is fixed text, env echoes the request's own vars). The client is curl, run inside
# the front namespace, one request per curl, in a few parallel streams; every request has a unique id in its URL, so
# a failed one can be matched with keel's error log line.
#
# Checks (one PASS/FAIL line each; the exit status is non-zero if any fails, with a one-line reason at the end):
#   1. balance   200 requests: both hosts answer, each at least 25 %.
#   2. host down under load, twice: pool1's link is cut (`ip link set down` in its namespace), then, in a second
#      round, pool1's keel-pool is stopped with TERM. 4 GET streams and 1 POST stream run meanwhile. No request keel
#      could retry may fail: keel tries a request once more on the other host when its connect fails, and when an
#      idempotent one got no byte of its answer (Sources/KeelFront/Upstream/UpstreamExchange.swift). Failures keel
#      may not retry are counted apart, each with keel's log line: a POST written to pool1 that then got neither an
#      answer nor a goodbye may have run there, so it is not sent twice (nginx does the same).
#      Passive health: keel logs pool1 marked down, the next requests all go to pool2 without waiting for a timeout;
#      after the link is back / the pool restarted, pool1 serves again fail_timeout after the last failure counted.
#   3. HUP of pool2's keel-pool master under load: every response 200, and the reload finishes during the load.
#   4. pool1 hangs (SIGSTOP): with max_fails = 1, one read_timeout takes it out (an attempt with no answer counts
#      toward max_fails, as in nginx), so one request waits for it, not every other one.
#
# Bounded: every wait polls with a deadline, every load has a request count, a per-stream time limit and
# curl --max-time, and a watchdog ends the whole run after $LIMIT seconds (default 300). Namespaces (with their veth
# pairs), processes and temporary files are removed on any exit: success, failure, Ctrl-C or TERM.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
KEEL=${KEEL:-$root/.build/debug/keel}
KEEL_POOL=${KEEL_POOL:-$root/.build/debug/keel-pool}
LIMIT=${LIMIT:-300}

# keel's upstream timeouts (seconds): short, so the run is short.
FAIL_TIMEOUT=8
CONNECT_TIMEOUT=1
READ_TIMEOUT=3

me=netns-test.sh
[ "$(id -u)" = 0 ] || { echo "$me: run as root (it makes network namespaces)" >&2; exit 2; }
for binary in "$KEEL" "$KEEL_POOL"; do [ -x "$binary" ] || { echo "$me: no executable $binary (swift build)" >&2; exit 2; }; done
for tool in ip curl ss; do command -v "$tool" >/dev/null || { echo "$me: $tool is needed" >&2; exit 2; }; done

id=$$
NS_FRONT=keel-front-$id
NS_POOL=("" "keel-pool1-$id" "keel-pool2-$id")    # NS_POOL[1], NS_POOL[2]
VETH_FRONT=("" "kf1-$id" "kf2-$id")                # in the front namespace
VETH_POOL=("" "kp1-$id" "kp2-$id")                 # in each pool's namespace
POOL_ADDR=("" 10.213.1.2 10.213.2.2)
WORK=$(mktemp -d /tmp/keel-netns.XXXXXX)
URL=http://127.0.0.1:8080

PIDS=()            # every background process this script started (killed by pid in cleanup)
POOL_PID=("" "" "")
WATCHDOG_PID=
FAILED=()          # one reason per failed check
STARTED_MS=$(date +%s%3N)
created_ns=()

# --- helpers ------------------------------------------------------------------------------------------------------

now_ms() { date +%s%3N; }
since() { echo $(( $(now_ms) - $1 )); }   # since T: milliseconds since T, a now_ms value
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; FAILED+=("$*"); }
die() { echo "$me: $*" >&2; exit 2; }
in_front() { ip netns exec "$NS_FRONT" "$@"; }

# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s until it succeeds; returns 1 after the deadline.
wait_until() {
    local deadline=$(( $(now_ms) + $1 * 1000 )) what=$2
    shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$(now_ms)" -ge "$deadline" ]; then echo "$me: timed out waiting for $what" >&2; return 1; fi
        sleep 0.1
    done
}

# count PATTERN FILE...: lines matching (0 when none, never an error).
count() { cat "${@:2}" 2>/dev/null | grep -c -E -- "$1" || true; }

# exited PID: the process is gone or a zombie (our child, not yet waited for).
exited() { [ ! -e "/proc/$1/stat" ] || [ "$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null)" = Z ]; }

# Lines of FILE after line OFFSET (log offsets are line counts taken before an action).
lines() { wc -l < "$1"; }
after() { tail -n "+$(( $2 + 1 ))" "$1"; }

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    set +e
    if [ "${#FAILED[@]}" -gt 0 ] || [ "$status" != 0 ]; then
        if [ -s "$WORK/keel.log" ]; then echo "--- keel's log (last 15 lines):"; tail -n 15 "$WORK/keel.log"; fi
    fi
    {   # (stderr off: bash would report each killed job)
        [ -n "$WATCHDOG_PID" ] && kill -TERM "$WATCHDOG_PID"
        for pid in "${PIDS[@]}"; do kill -KILL "$pid"; done
        # Whatever else runs in the namespaces this run made (pool workers, curls of a load stream).
        for ns in "${created_ns[@]}"; do ip netns pids "$ns" | xargs -r kill -KILL; done
        for pid in "${PIDS[@]}" $WATCHDOG_PID; do wait "$pid"; done
    } 2>/dev/null
    for ns in "${created_ns[@]}"; do ip netns del "$ns" 2>/dev/null; done   # takes its end of each veth pair along
    if [ "${KEEP:-0}" = 1 ]; then echo "$me: logs kept in $WORK"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'echo "$me: interrupted" >&2; exit 130' INT
trap 'echo "$me: terminated (watchdog or TERM)" >&2; exit 143' TERM

# The whole run is bounded: after LIMIT seconds the watchdog TERMs this script (and cleanup runs).
(
    trap 'kill "$sleeper" 2>/dev/null; exit 0' TERM
    sleep "$LIMIT" & sleeper=$!
    wait "$sleeper"
    # Only while this script runs (else this subshell has been reparented and $id may be another process now).
    [ "$(awk '{ print $4 }' "/proc/$BASHPID/stat")" = "$id" ] || exit 0
    echo "$me: over the ${LIMIT}s limit, stopping" >&2
    kill -TERM "$id"
) &
WATCHDOG_PID=$!

# --- setup: three namespaces, two veth pairs, two pools, keel --------------------------------------------------------

make_network() {
    for ns in "$NS_FRONT" "${NS_POOL[1]}" "${NS_POOL[2]}"; do
        ip netns add "$ns"
        created_ns+=("$ns")
        ip -n "$ns" link set lo up
    done
    local n
    for n in 1 2; do
        ip link add "${VETH_FRONT[n]}" netns "$NS_FRONT" type veth peer name "${VETH_POOL[n]}" netns "${NS_POOL[n]}"
        ip -n "$NS_FRONT" addr add "10.213.$n.1/24" dev "${VETH_FRONT[n]}"
        ip -n "$NS_FRONT" link set "${VETH_FRONT[n]}" up
        ip -n "${NS_POOL[n]}" addr add "${POOL_ADDR[n]}/24" dev "${VETH_POOL[n]}"
        ip -n "${NS_POOL[n]}" link set "${VETH_POOL[n]}" up
    done
}

write_app() {
    # The host's name in the body and in X-Pool. The body is read, so a POST is consumed like a real app would.
    cat > "$WORK/app.py" <<'PY'
import os

NAME = os.environ.get("POOL_NAME", "unknown")
BODY = (NAME + "\n").encode()

def application(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BODY))), ("X-Pool", NAME)])
    return [BODY]
PY
}

pool_listening() { ip netns exec "${NS_POOL[$1]}" ss -Hltn "sport = :3031" | grep -q .; }
# pool_ready N OFFSET: the master is alive, listens, and both workers said ready after log line OFFSET.
pool_ready() {
    kill -0 "${POOL_PID[$1]}" && pool_listening "$1" && [ "$(after "$WORK/pool$1.log" "$2" | grep -c ' ready')" -ge 2 ]
}

# start_pool N: keel-pool on 0.0.0.0:3031 in pool N's namespace; returns once its two workers are ready.
start_pool() {
    local n=$1 offset
    touch "$WORK/pool$n.log"
    offset=$(lines "$WORK/pool$n.log")
    ip netns exec "${NS_POOL[n]}" "$KEEL_POOL" --allow-root --socket 0.0.0.0:3031 --wsgi-file "$WORK/app.py" \
        --env "POOL_NAME=pool$n" --processes 2 --threads 4 --graceful-timeout 5 >> "$WORK/pool$n.log" 2>&1 &
    POOL_PID[n]=$!
    PIDS+=("$!")
    wait_until 30 "pool$n to be ready" pool_ready "$n" "$offset" || die "pool$n did not start: $(tail -n 3 "$WORK/pool$n.log" | tr '\n' ' ')"
}

start_keel() {
    cat > "$WORK/keel.toml" <<TOML
[[listen]]
address = "127.0.0.1:8080"

[log]
access = "$WORK/access.log"
error = "-"

[upstream.pools]
servers = ["${POOL_ADDR[1]}:3031", "${POOL_ADDR[2]}:3031"]
max_fails = 1
fail_timeout = "${FAIL_TIMEOUT}s"
connect_timeout = "${CONNECT_TIMEOUT}s"
read_timeout = "${READ_TIMEOUT}s"

[[route]]
path = "/healthz"
return = 200
body = "ok\n"

[[route]]
path = "/"
uwsgi = "pools"
TOML
    timeout 20 ip netns exec "$NS_FRONT" "$KEEL" check --config "$WORK/keel.toml" > "$WORK/keel-check.log" 2>&1 || die "keel check: $(tail -n 1 "$WORK/keel-check.log")"
    ip netns exec "$NS_FRONT" "$KEEL" --config "$WORK/keel.toml" > "$WORK/keel.log" 2>&1 &
    PIDS+=("$!")
    wait_until 20 "keel to listen" in_front curl -sf --max-time 1 "$URL/healthz" || die "keel did not start: $(tail -n 3 "$WORK/keel.log" | tr '\n' ' ')"
}

# --- load ---------------------------------------------------------------------------------------------------------

# One stream, run by bash inside the front namespace: N requests one after another, each a curl with --max-time,
# and no request started after the stream's time limit. One line per request: METHOD ID STATUS SECONDS POOL.
STREAM='
run=$1 stream=$2 n=$3 method=$4 limit=$5
end=$((SECONDS + limit))
for i in $(seq 1 "$n"); do
    id="$run-$stream-$i"
    if [ "$SECONDS" -ge "$end" ]; then echo "$method $id 000 0 not-sent(stream-time-limit)"; continue; fi
    if [ "$method" = POST ]; then body=(--data-binary "request $id"); else body=(); fi
    out=$(curl -s -o /dev/null --max-time 10 "${body[@]}" -w "%{http_code} %{time_total} %header{x-pool}" "http://127.0.0.1:8080/?id=$id")
    set -- $out
    echo "$method $id ${1:-000} ${2:-0} ${3:--}"
done'

LOAD_PIDS=()
# start_load RUN GET_STREAMS REQUESTS_PER_STREAM [POST_STREAMS POSTS_PER_STREAM]: in the background; results in
# $WORK/RUN.get.S and $WORK/RUN.post.S.
start_load() {
    local run=$1 gets=$2 per=$3 posts=${4:-0} post_per=${5:-0} s
    LOAD_PIDS=()
    rm -f "$WORK/$run".*
    for s in $(seq 1 "$gets"); do
        ip netns exec "$NS_FRONT" bash -c "$STREAM" stream "$run" "g$s" "$per" GET 60 > "$WORK/$run.get.$s" 2>/dev/null &
        LOAD_PIDS+=("$!"); PIDS+=("$!")
    done
    for s in $(seq 1 "$posts"); do
        ip netns exec "$NS_FRONT" bash -c "$STREAM" stream "$run" "p$s" "$post_per" POST 60 > "$WORK/$run.post.$s" 2>/dev/null &
        LOAD_PIDS+=("$!"); PIDS+=("$!")
    done
}
wait_load() { local pid; for pid in "${LOAD_PIDS[@]}"; do wait "$pid" || true; done; }
done_gets() { cat "$WORK/$1".get.* 2>/dev/null | wc -l; }
at_least() { [ "$(done_gets "$1")" -ge "$2" ]; }

# classify FILE...: sorts the requests of a load into three counts, printed as "OK NOT_RETRYABLE RETRYABLE", and
# writes one line per failed request (with keel's error line for its id) to $WORK/explained.
#   OK             answered 200
#   NOT_RETRYABLE  keel may not send it again, by its rules (UpstreamExchange.swift): its answer had begun (the
#                  status was sent), or it is not idempotent (a POST) and was written to a server that then closed
#                  without a goodbye or sent nothing until read_timeout: that server may have run it.
#   RETRYABLE      anything else: keel could have tried the other server (a failed connect, a close or timeout of
#                  a GET, no keel error line at all).
classify() {
    local method rid status secs pool line kind ok=0 not_retryable=0 retryable=0
    : > "$WORK/explained"
    while read -r method rid status secs pool; do
        if [ "$status" = 200 ]; then ok=$((ok + 1)); continue; fi
        line=$(grep -F "id=$rid " "$WORK/keel.log" | grep -v "trying another server" | tail -n 1 | sed 's/^[0-9/]* [0-9:]* //' || true)
        if echo "$line" | grep -q "while sending the response"; then
            kind="not retryable: its answer had begun"
        elif [ "$method" = POST ] && echo "$line" | grep -qE \
            "sent nothing for .* \(read_timeout\)|closed the connection before answering|closed the connection before the response was complete"; then
            kind="not retryable: a POST written to a server that then gave no answer and no goodbye"
        else
            kind="RETRYABLE, yet failed"
        fi
        case $kind in not*) not_retryable=$((not_retryable + 1)) ;; *) retryable=$((retryable + 1)) ;; esac
        echo "    $method $rid -> $status after ${secs}s [$kind]; keel: ${line:-(no error line)}" >> "$WORK/explained"
    done < <(cat "$@")
    echo "$ok $not_retryable $retryable"
}
explained() { cat "$WORK/explained"; }

# --- checks -------------------------------------------------------------------------------------------------------

check_balance() {
    local t0; t0=$(now_ms)
    start_load balance 4 50
    wait_load
    local total ok one two
    total=$(cat "$WORK"/balance.get.* | wc -l)
    ok=$(count ' 200 ' "$WORK"/balance.get.*)
    one=$(count ' 200 [0-9.]+ pool1$' "$WORK"/balance.get.*)
    two=$(count ' 200 [0-9.]+ pool2$' "$WORK"/balance.get.*)
    if [ "$total" = 200 ] && [ "$ok" = 200 ] && [ "$one" -ge 50 ] && [ "$two" -ge 50 ]; then
        pass "1 balance: 200 GETs in 4 streams, all 200; pool1 $one, pool2 $two ($(since "$t0") ms)"
    else
        fail "1 balance: $ok of $total answered 200; pool1 $one, pool2 $two (want all 200, each >= 50)"
        classify "$WORK"/balance.get.* > /dev/null
        explained
    fi
}

# pool1_down_round link|stop: pool1 goes down under load (GETs and a POST stream); then back.
pool1_down_round() {
    local how=$1 run="down-$1" t0 t_cut t_marked="" keel_offset
    t0=$(now_ms)
    keel_offset=$(lines "$WORK/keel.log")
    start_load "$run" 4 75 1 40
    wait_until 30 "60 answers of the $how round's load" at_least "$run" 60 || die "the $how round's load made no progress"
    t_cut=$(now_ms)
    if [ "$how" = link ]; then
        ip -n "${NS_POOL[1]}" link set "${VETH_POOL[1]}" down
    else
        kill -TERM "${POOL_PID[1]}"
    fi
    # Marked down by a failed connect, or by a request that got no answer (a close, read_timeout): nginx counts both.
    local marked="(connect\(\) to ${POOL_ADDR[1]}:3031 failed .*|\(${POOL_ADDR[1]}:3031\): )server marked down"
    if wait_until $(( READ_TIMEOUT + CONNECT_TIMEOUT + 15 )) "keel to mark pool1 down" \
        bash -c "tail -n +$((keel_offset + 1)) '$WORK/keel.log' | grep -qE '$marked'"; then
        t_marked=$(since "$t_cut")
    fi
    wait_load
    local load_ms; load_ms=$(since "$t0")
    if [ "$how" = stop ]; then
        # The pool's TERM drain is bounded by its --graceful-timeout 5.
        wait_until 15 "pool1's keel-pool to exit after TERM" exited "${POOL_PID[1]}" || die "pool1 did not stop on TERM"
        wait "${POOL_PID[1]}" || true
    fi

    # Every request keel could retry must be 200; the others are counted apart, each with the reason.
    local gets get_ok by_pool1 by_pool2 slowest posts post_ok not_retryable retryable
    gets=$(cat "$WORK/$run".get.* | wc -l)
    by_pool1=$(count ' 200 [0-9.]+ pool1$' "$WORK/$run".get.*)
    by_pool2=$(count ' 200 [0-9.]+ pool2$' "$WORK/$run".get.*)
    slowest=$(cat "$WORK/$run".get.* | awk '$4 > m { m = $4 } END { printf "%.2f", m }')
    read -r get_ok not_retryable retryable < <(classify "$WORK/$run".get.*)
    if [ "$gets" = 300 ] && [ "$get_ok" = 300 ]; then
        pass "2 pool1 down ($how) under load: 300 of 300 GETs answered 200 (pool1 $by_pool1, pool2 $by_pool2; slowest ${slowest}s; load ${load_ms} ms)"
    elif [ "$gets" = 300 ] && [ "$retryable" = 0 ]; then
        pass "2 pool1 down ($how) under load: $get_ok of 300 GETs answered 200, $not_retryable not retryable (below), none retryable failed (load ${load_ms} ms)"
        explained
    else
        fail "2 pool1 down ($how) under load: $get_ok of $gets GETs answered 200, $retryable failed that keel could have retried, $not_retryable not retryable"
        explained
    fi
    posts=$(cat "$WORK/$run".post.* | wc -l)
    read -r post_ok not_retryable retryable < <(classify "$WORK/$run".post.*)
    if [ "$post_ok" = "$posts" ]; then
        pass "2 POSTs beside it ($how): $post_ok of $posts answered 200"
    elif [ "$retryable" = 0 ]; then
        pass "2 POSTs beside it ($how): $post_ok of $posts answered 200; $not_retryable not retryable, counted apart (keel sends a POST once unless a goodbye proves it unread):"
        explained
    else
        fail "2 POSTs beside it ($how): $post_ok of $posts answered 200; $retryable failed that keel could have retried, $not_retryable not retryable"
        explained
    fi
    if [ "$how" = stop ]; then
        # Requests written to pool1 after its TERM that got neither an answer nor a goodbye, only a close.
        local unanswered
        unanswered=$(after "$WORK/keel.log" "$keel_offset" | grep -cE "\(${POOL_ADDR[1]}:3031\) closed the connection before answering" || true)
        echo "     note: $unanswered requests were written to pool1 after its TERM and got a close without answer or goodbye"
    fi

    # Passive health: keel logged pool1 down, and requests now go to pool2 without waiting on pool1.
    local after_offset; after_offset=$(lines "$WORK/keel.log")
    local t_after; t_after=$(now_ms)
    start_load "after-$how" 1 40
    wait_load
    local to_pool2 slow probes checked
    to_pool2=$(count ' 200 [0-9.]+ pool2$' "$WORK/after-$how".get.*)
    slow=$(cat "$WORK/after-$how".get.* | awk '$4 > 0.5' | wc -l)
    probes=$(after "$WORK/keel.log" "$after_offset" | grep -c "${POOL_ADDR[1]}:3031" || true)
    checked=$(( $(since "$t_cut") - ${t_marked:-0} ))
    if [ -n "$t_marked" ] && [ "$to_pool2" = 40 ] && [ "$slow" = 0 ]; then
        pass "2 passive health ($how): keel logged pool1 marked down ${t_marked} ms after the $how; then 40 of 40 GETs to pool2, none slower than 0.5 s ($(since "$t_after") ms, ending ${checked} ms after the mark)"
    else
        fail "2 passive health ($how): marked down: ${t_marked:-not logged} ms after the $how; $to_pool2 of 40 GETs to pool2 with 200, $slow slower than 0.5 s, $probes keel log lines about pool1 meanwhile"
    fi

    # Back: the link up / the pool restarted. keel tries pool1 again once fail_timeout has passed since it marked it
    # down, not before (pool2 is up, so pool1 is never the only choice). Requests in flight to pool1 when it went
    # away fail up to read_timeout later and each counts (as in nginx), so the last mark may be that much later.
    local t_back back_ms since_mark
    if [ "$how" = link ]; then
        ip -n "${NS_POOL[1]}" link set "${VETH_POOL[1]}" up
    else
        start_pool 1
    fi
    t_back=$(now_ms)
    if wait_until $(( FAIL_TIMEOUT + 10 )) "pool1 to serve again" \
        in_front bash -c "curl -s -o /dev/null --max-time 5 -w '%header{x-pool}' $URL/?id=back-$how | grep -q pool1"; then
        back_ms=$(since "$t_back")
        since_mark=$(( $(since "$t_cut") - ${t_marked:-0} ))
        local what; what=$([ "$how" = link ] && echo "the link came up" || echo "the pool restarted")
        if [ -n "$t_marked" ] && [ "$since_mark" -ge $(( FAIL_TIMEOUT * 1000 - 300 )) ] \
            && [ "$since_mark" -le $(( (FAIL_TIMEOUT + READ_TIMEOUT) * 1000 + 1500 )) ]; then
            pass "2 pool1 back ($how): serving again ${back_ms} ms after $what, ${since_mark} ms after keel marked it down (fail_timeout ${FAIL_TIMEOUT}s)"
        else
            fail "2 pool1 back ($how): serving again ${back_ms} ms after $what, ${since_mark} ms after keel marked it down (want fail_timeout ${FAIL_TIMEOUT}s after the last mark: ${FAIL_TIMEOUT}-$(( FAIL_TIMEOUT + READ_TIMEOUT )) s after the first, -0.3/+1.5 s)"
        fi
    else
        fail "2 pool1 back ($how): pool1 answered nothing within $(( FAIL_TIMEOUT + 10 )) s of being back"
    fi
}

check_hup() {
    local t0 offset t_hup t_done=""
    t0=$(now_ms)
    offset=$(lines "$WORK/pool2.log")
    start_load hup 4 100 1 40
    wait_until 30 "60 answers of the HUP round's load" at_least hup 60 || die "the HUP round's load made no progress"
    kill -HUP "${POOL_PID[2]}"
    t_hup=$(now_ms)
    # Reloaded: generation 2 started and both generation-1 workers were retired (and exited).
    reloaded() {
        after "$WORK/pool2.log" "$offset" | grep -q "graceful reload, starting generation" \
            && [ "$(after "$WORK/pool2.log" "$offset" | grep -cE 'exited')" -ge 2 ]
    }
    if wait_until 30 "pool2's reload to finish" reloaded; then t_done=$(since "$t_hup"); fi
    local left; left=$(( 400 - $(done_gets hup) ))
    wait_load
    local total ok posts post_ok one two
    total=$(cat "$WORK"/hup.get.* | wc -l)
    ok=$(count ' 200 ' "$WORK"/hup.get.*)
    posts=$(cat "$WORK"/hup.post.* | wc -l)
    post_ok=$(count ' 200 ' "$WORK"/hup.post.*)
    one=$(count ' 200 [0-9.]+ pool1$' "$WORK"/hup.get.* "$WORK"/hup.post.*)
    two=$(count ' 200 [0-9.]+ pool2$' "$WORK"/hup.get.* "$WORK"/hup.post.*)
    if [ "$total" = 400 ] && [ "$ok" = 400 ] && [ "$post_ok" = "$posts" ] && [ -n "$t_done" ]; then
        pass "3 HUP of pool2 under load: 400 of 400 GETs and $post_ok of $posts POSTs answered 200 (pool1 $one, pool2 $two); reload done ${t_done} ms after the HUP, $left GETs still to go then ($(since "$t0") ms)"
    else
        fail "3 HUP of pool2 under load: $ok of $total GETs and $post_ok of $posts POSTs answered 200; reload finished: ${t_done:-no} ms"
        classify "$WORK"/hup.* > /dev/null
        explained
    fi
}

# Check 4 (HANG=0 leaves it out): pool1 hangs (all its processes SIGSTOPped; its kernel still completes TCP handshakes, so
# connects succeed and nothing answers). keel, as nginx, counts a timeout towards max_fails: with max_fails = 1 the
# first read_timeout takes pool1 out for fail_timeout, so at most one of these sequential GETs waits for it.
check_hang() {
    local t0 offset stopped ok slow marked
    t0=$(now_ms)
    offset=$(lines "$WORK/keel.log")
    stopped=$(ip netns pids "${NS_POOL[1]}" | tr '\n' ' ')
    kill -STOP $stopped
    start_load hang 1 12
    wait_load
    kill -CONT $stopped
    ok=$(count ' 200 ' "$WORK"/hang.get.*)
    slow=$(cat "$WORK"/hang.get.* | awk '$4 > 1' | wc -l)
    marked=$(after "$WORK/keel.log" "$offset" | grep -c "marked down" || true)
    if [ "$ok" = 12 ] && [ "$slow" -le 1 ]; then
        pass "4 pool1 hung: 12 of 12 GETs answered 200, $slow waited for read_timeout; pool1 marked down $marked times ($(since "$t0") ms)"
    else
        fail "4 pool1 hung: $ok of 12 GETs answered 200, $slow of 12 waited read_timeout (${READ_TIMEOUT}s) for pool1 before going to pool2; keel marked pool1 down $marked times (max_fails = 1) ($(since "$t0") ms)"
    fi
}

# --- run ----------------------------------------------------------------------------------------------------------

echo "$me: $("$KEEL" --version 2>/dev/null | head -n 1), run $id, logs in $WORK"
t=$(now_ms)
make_network
write_app
start_pool 1
start_pool 2
start_keel
echo "setup: 3 namespaces, 2 veth pairs, 2 pools and keel up in $(since "$t") ms"

check_balance
pool1_down_round link
pool1_down_round stop
check_hup
if [ "${HANG:-1}" = 1 ]; then check_hang; fi

echo "keel's error lines ($(grep -c '\[error\]' "$WORK/keel.log" || true) in all; the first 20):"
grep '\[error\]' "$WORK/keel.log" | head -n 20 | sed 's/^/  /'
echo "$me: ${#FAILED[@]} failed, $(since "$STARTED_MS") ms in all"
if [ "${#FAILED[@]}" -gt 0 ]; then
    echo "$me: FAILED: ${FAILED[0]}"
    exit 1
fi
