#!/usr/bin/env bash
# keel-pool tune's search against its sweep (issue 17): for each workload of the WSGI example app, one search
# run and one --sweep run (every shape of the same grid) with the same budget, hence the same warm-up and window
# per shape. Goal: the search's best ≥ 95 % of the sweep's best requests/s, in under a third of its time.
#
#   bench/tune.sh
#   KEEL_POOL=.build/release/keel-pool BUDGET=300s CONCURRENCY=16 bench/tune.sh
set -euo pipefail

KEEL=${KEEL:-unused}
KEEL_POOL=${KEEL_POOL:-}
BUDGET=${BUDGET:-600s}            # both runs; the sweep of a 2-core grid (4 × 5 shapes) fits in it
CONCURRENCY=${CONCURRENCY:-16}
WORKLOADS=${WORKLOADS:-"/sleep?s=0.05 /cpu?ms=2 /"}
OUT_PREFIX="tune-"
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
INVOCATION="BUDGET=$BUDGET CONCURRENCY=$CONCURRENCY WORKLOADS='$WORKLOADS' bench/tune.sh"
APP="$ROOT/deploy/examples/wsgi/app.py"

if [ -z "$KEEL_POOL" ]; then
    release_build "$ROOT/.build-bench" keel-pool KeelPoolWorker
    KEEL_POOL=$BIN_DIR/keel-pool
fi
require_executable KEEL_POOL "$KEEL_POOL"
setup_tmp keel-tune

# tune_run NAME URL [FLAG...] : one tune run, its reports in $TMP/NAME; prints "best_rps elapsed_s shapes pick".
tune_run() {
    local name=$1 url=$2
    shift 2
    log "tune $name: $url $*"
    "$KEEL_POOL" tune --wsgi-file "$APP" --allow-root --url "$url" --concurrency "$CONCURRENCY" \
        --budget "$BUDGET" --out "$TMP/$name" "$@" >"$TMP/$name.txt" 2>&1 || {
        cat "$TMP/$name.txt" >&2
        exit 1
    }
    "$SYS_PYTHON" - "$TMP/$name/tune.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
best = max((m['requests_per_second'] for m in d['measurements']), default=0)
pick = d['recommended']['shape'] if d['recommended'] else None
print('%.1f %.1f %d %s' % (best, d['elapsed_seconds'], len(d['measurements']),
                           '%d×%d' % (pick['processes'], pick['per_process']) if pick else 'none'))
PY
}

ROWS=()
index=0
for url in $WORKLOADS; do
    index=$((index + 1))
    read -r search_rps search_s search_n search_pick <<<"$(tune_run "search-$index" "$url")"
    read -r sweep_rps sweep_s sweep_n sweep_pick <<<"$(tune_run "sweep-$index" "$url" --sweep)"
    ROWS+=("$url|$search_rps|$search_s|$search_n|$search_pick|$sweep_rps|$sweep_s|$sweep_n|$sweep_pick")
done

report() {
    echo "| URL | search: best req/s | s | shapes | pick | sweep: best req/s | s | shapes | pick | best ÷ sweep's (goal ≥ 0.95) | time ÷ sweep's (goal < 0.33) |"
    echo "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: |"
    local row url a b c d e f g h
    for row in "${ROWS[@]}"; do
        IFS='|' read -r url a b c d e f g h <<<"$row"
        awk -v u="$url" -v a="$a" -v b="$b" -v c="$c" -v d="$d" -v e="$e" -v f="$f" -v g="$g" -v h="$h" \
            'BEGIN { printf "| `%s` | %.1f | %.0f | %d | %s | %.1f | %.0f | %d | %s | %.2f | %.2f |\n",
                     u, a, b, c, d, e, f, g, h, (e > 0 ? a / e : 0), (f > 0 ? b / f : 0) }'
    done
}

prepare_out
{
    echo "# Keel bench: keel-pool tune, search against sweep"
    echo
    report
    echo
    echo "- app: deploy/examples/wsgi/app.py; $CONCURRENCY client connections; budget $BUDGET for each run"
    echo "- cores: $(nproc); date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); commit: $(git -C "$ROOT" log -1 --format=%h)"
    echo "- command: \`$INVOCATION\`"
} | publish tune
echo
report
