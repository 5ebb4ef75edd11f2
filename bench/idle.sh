#!/usr/bin/env bash
# Memory per idle keep-alive client connection (issue 14): nginx (1 worker) and keel (1 event loop), each
# answering `return 200` alone, get IDLE connections (default 8,000) that each send one request, read the
# answer and then stay open. Reports each front's RSS (keel's process, the nginx worker) before and with
# the connections open, and the difference per connection. See bench/README.md.
#
#   bench/idle.sh
#   IDLE=2000 KEEL=... bench/idle.sh
set -euo pipefail

KEEL=${KEEL:-}
IDLE=${IDLE:-8000}
OUT_PREFIX="idle-"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
SCRATCH="$ROOT/.build-bench"
INVOCATION="IDLE=$IDLE${KEEL:+ KEEL=$KEEL} bench/idle.sh"

case "$IDLE" in '' | *[!0-9]* | 0) echo "IDLE=$IDLE: give a positive number" >&2; exit 2 ;; esac
ulimit -n $((IDLE * 2 + 1000)) || { echo "cannot raise the open files limit to $((IDLE * 2 + 1000)) (run as root)" >&2; exit 1; }

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }

# hold_connections PORT COUNT READY : opens COUNT connections, one GET each, reads each answer, then keeps
# them open until stdin closes; touches READY once all are answered.
hold_connections() {
    "$SYS_PYTHON" - "$1" "$2" "$3" <<'PY'
import selectors, socket, sys, time
port, count, ready = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
request = b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n"
sel = selectors.DefaultSelector()
socks, pending = [], 0
deadline = time.monotonic() + 120
for i in range(count):
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(("127.0.0.1", port))
    socks.append(s)
    sel.register(s, selectors.EVENT_WRITE, [b""])
    pending += 1
    if len(socks) % 500 == 0 or i == count - 1:
        while pending > (0 if i == count - 1 else 400):
            if time.monotonic() > deadline: sys.exit("timed out opening connections")
            for key, events in sel.select(timeout=1):
                s = key.fileobj
                if events & selectors.EVENT_WRITE:
                    s.send(request)
                    sel.modify(s, selectors.EVENT_READ, key.data)
                else:
                    data = s.recv(4096)
                    if not data: sys.exit("a connection closed before its answer")
                    key.data[0] += data
                    if b"\r\n\r\n" in key.data[0]:
                        sel.unregister(s)
                        pending -= 1
open(ready, "w").close()
sys.stdin.read()
PY
}

# row KEY LABEL PID PORT : RSS before, with IDLE answered connections open, per connection
ROWS=()
row() {
    local key=$1 label=$2 pid=$3 port=$4 before after ready="$TMP/ready-$1" holder
    wait_ready "http://127.0.0.1:$port/"
    for _ in 1 2 3; do curl -s -o /dev/null "http://127.0.0.1:$port/"; done
    before=$(rss_kib "$pid")
    mkfifo "$TMP/hold-$key"
    hold_connections "$port" "$IDLE" "$ready" <"$TMP/hold-$key" &
    holder=$!
    exec 9>"$TMP/hold-$key"
    local waited=0
    while [ ! -e "$ready" ]; do
        alive "$holder" || { echo "$label: the client failed" >&2; exit 1; }
        sleep 0.2; waited=$((waited + 1))
        [ "$waited" -lt 900 ] || { echo "$label: $IDLE connections not answered in 180 s" >&2; exit 1; }
    done
    sleep 1
    after=$(rss_kib "$pid")
    exec 9>&-
    wait "$holder" || true
    ROWS+=("$key|$label|$before|$after|$(awk -v a="$before" -v b="$after" -v n="$IDLE" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }')")
    log "$label: RSS $before KiB idle, $after KiB with $IDLE connections: $(awk -v a="$before" -v b="$after" -v n="$IDLE" 'BEGIN { printf "%.0f", (b - a) * 1024 / n }') bytes per connection"
}

install_tools
if [ -z "$KEEL" ]; then release_build "$SCRATCH"; KEEL=$BIN_DIR/keel; fi
require_executable KEEL "$KEEL"
setup_tmp keel-idle
prepare_out

port=$(free_port)
NGINX_WORKER_CONNECTIONS=$((IDLE + 100)) start_nginx_with nginx "$port" "    keepalive_timeout 300s; keepalive_requests 100000;" "            return 200 \"Hello world!\\n\";"
master=$LAST_PID
wait_ready "http://127.0.0.1:$port/" || { cat "$TMP/nginx/error.log" "$TMP/nginx.log" >&2; exit 1; }
row N "nginx (1 worker)" "$(children "$master")" "$port"
stop_server "$master"

port=$(free_port)
printf 'event_loops = 1\n[[listen]]\naddress = "127.0.0.1:%s"\n[limits]\nmax_connections = %s\nkeepalive_timeout = "300s"\n[log]\naccess = "off"\n[[route]]\nreturn = 200\nbody = "Hello world!\\n"\n' \
    "$port" "$((IDLE + 100))" >"$TMP/keel.toml"
start keel TERM "$KEEL" --config "$TMP/keel.toml"
row K "keel (1 event loop)" "$LAST_PID" "$port"
stop_server "$LAST_PID"

save_cmds
{
    echo "# Memory per idle keep-alive connection ($IDLE connections, one request each)"
    echo
    echo "| front | RSS idle (KiB) | RSS with the connections (KiB) | bytes per connection |"
    echo "| --- | ---: | ---: | ---: |"
    for r in "${ROWS[@]}"; do IFS='|' read -r _ label before after per <<<"$r"; echo "| $label | $before | $after | $per |"; done
    echo
    echo "keel ÷ nginx bytes per connection: $(awk -v k="$(field K 5)" -v n="$(field N 5)" 'BEGIN { if (n > 0) printf "%.1f×", k / n; else print "-" }')"
    echo
    environment "- keel: $KEEL" "- source: $(source_state)" | grep -v '^- each row'
} | publish idle
