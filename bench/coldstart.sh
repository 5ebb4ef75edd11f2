#!/usr/bin/env bash
# Cold start to the first served request, and idle memory (issue 19): keel with one WSGI [[pool]] of 2 workers,
# against nginx + uWSGI (2 workers) started by their own commands, the same WSGI app (deploy/examples/wsgi/app.py)
# on loopback. Each start is timed from the launch of the command(s) to the first 200 through the front (curl every
# 5 ms); RUNS starts each, the median reported. Then RSS once idle (1 s after the first answer): the front process,
# and the whole tree (front + pool/uWSGI master + workers). See bench/README.md.
#
#   KEEL=dist/.../keel bench/coldstart.sh     # the binary to measure (default: the release build in .build-bench)
#   RUNS=9 bench/coldstart.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
KEEL=${KEEL:-$ROOT/.build-bench/release/keel}
RUNS=${RUNS:-7}
APP=$ROOT/deploy/examples/wsgi/app.py
[ -x "$KEEL" ] || { echo "bench/coldstart.sh: no keel at $KEEL: swift build -c release --scratch-path .build-bench, or set KEEL" >&2; exit 2; }
command -v nginx >/dev/null && [ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] \
    || { echo "bench/coldstart.sh: needs nginx, uwsgi-core and uwsgi-plugin-python3 (apt)" >&2; exit 2; }
export KEEL_POOL_ALLOW_ROOT=1
dir=$(mktemp -d /tmp/keel-cold.XXXXXX)
chmod 755 "$dir"   # nginx's worker (nobody) reaches uWSGI's socket in it
pids=()
cleanup() { for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT
port=$((20000 + RANDOM % 20000))

now_ms() { date +%s%3N; }
first_200() {  # waits up to 20 s for a 200 on $1; prints the milliseconds since $2
    local deadline=$(( $(now_ms) + 20000 ))
    while [ "$(now_ms)" -lt "$deadline" ]; do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$1" 2>/dev/null)" = 200 ]; then
            echo $(( $(now_ms) - $2 )); return 0
        fi
        sleep 0.005
    done
    echo "bench/coldstart.sh: no 200 from $1 within 20 s" >&2; return 1
}
tree_pids() { local p; echo "$1"; for p in $(pgrep -P "$1"); do tree_pids "$p"; done; }
rss_kib() { local total=0 p; for p in "$@"; do total=$(( total + $(awk '/^VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0) )); done; echo "$total"; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
stop_all() { local pid; for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "$@"; do for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done; kill -KILL "$pid" 2>/dev/null || true; done; }

cat > "$dir/keel.toml" <<TOML
[[listen]]
address = "127.0.0.1:$port"
[log]
access = "off"
[[pool]]
name = "app"
args = ["--socket", "$dir/app.sock", "--processes", "2", "--threads", "1", "--wsgi-file", "$APP"]
[[route]]
path = "/"
uwsgi = "unix:$dir/app.sock"
TOML
mkdir -p "$dir/nginx/logs"
cat > "$dir/nginx/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx/nginx.pid;
events { worker_connections 1024; }
http {
    access_log off;
    server {
        listen 127.0.0.1:$port;
        location / { include /etc/nginx/uwsgi_params; uwsgi_pass unix:$dir/uwsgi.sock; }
    }
}
CONF

keel_ms=(); stack_ms=(); keel_rss=""; stack_rss=""
for run in $(seq 1 "$RUNS"); do
    rm -f "$dir/app.sock"
    start=$(now_ms)
    "$KEEL" --config "$dir/keel.toml" > "$dir/keel.log" 2>&1 & keel=$!; pids+=("$keel")
    keel_ms+=("$(first_200 "http://127.0.0.1:$port/" "$start")")
    if [ "$run" = 1 ]; then sleep 1; tree=$(tree_pids "$keel"); keel_rss="$(rss_kib "$keel") $(rss_kib $tree) $(echo $tree | wc -w)"; fi
    stop_all "$keel"

    rm -f "$dir/uwsgi.sock"
    start=$(now_ms)
    /usr/bin/uwsgi --plugin python3 --master --processes 2 --threads 1 --socket "$dir/uwsgi.sock" --chmod-socket=666 --wsgi-file "$APP" \
        --die-on-term --disable-logging > "$dir/uwsgi.log" 2>&1 & uwsgi=$!; pids+=("$uwsgi")
    nginx -c "$dir/nginx/nginx.conf" -p "$dir/nginx" -e "$dir/nginx/error.log" -g 'daemon off;' & nginx=$!; pids+=("$nginx")
    stack_ms+=("$(first_200 "http://127.0.0.1:$port/" "$start")")
    if [ "$run" = 1 ]; then sleep 1; tree="$(tree_pids "$nginx") $(tree_pids "$uwsgi")"
        worker=$(pgrep -P "$nginx" | head -1); stack_rss="$(rss_kib "$nginx" "$worker") $(rss_kib $tree) $(echo $tree | wc -w)"; fi
    stop_all "$nginx" $(pgrep -P "$nginx" || true) "$uwsgi"   # nginx's worker too: it can outlive a killed master
done

k=$(printf '%s\n' "${keel_ms[@]}" | median); s=$(printf '%s\n' "${stack_ms[@]}" | median)
read -r krss ktree kcount <<< "$keel_rss"; read -r srss stree scount <<< "$stack_rss"
echo
echo "| stack | cold start to first 200 (ms, median of $RUNS) | all runs (ms) | front RSS idle (KiB) | whole tree RSS idle (KiB) | processes |"
echo "| --- | ---: | --- | ---: | ---: | ---: |"
echo "| keel + [[pool]] (2 WSGI workers) | $k | ${keel_ms[*]} | $krss | $ktree | $kcount |"
echo "| nginx + uWSGI (2 workers) | $s | ${stack_ms[*]} | $srss | $stree | $scount |"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S') UTC; commit: $(git -C "$ROOT" rev-parse --short HEAD); nproc: $(nproc)"
echo "- keel: $KEEL ($("$KEEL" version | head -1), $(du -k "$KEEL" | cut -f1) KiB); nginx: $(nginx -v 2>&1 | cut -d/ -f2); uWSGI: $(/usr/bin/uwsgi --version)"
echo "- front RSS: keel's process / nginx's master + worker; tree: every process of the stack"
