#!/usr/bin/env bash
# Builds keel's container image for real and runs it (issue 19), as root, with no registry: the root filesystem is
# Debian 12 minbase made by debootstrap from Debian's mirror (cached in .build-image/) plus the runtime packages of
# deploy/Dockerfile's runtime stage (ca-certificates, libssl3, zlib1g, libpython3.11, python3), the user and group
# `keel` (10001:10001), /run/keel, deploy/keel.toml and deploy/public where the Dockerfile puts them, and the single
# keel binary from deploy/build-dist.sh; buildah (vfs storage: no overlay needed) makes it an image with the
# Dockerfile's USER, WORKDIR, EXPOSE, STOPSIGNAL, ENTRYPOINT and CMD, and podman runs it (`-p`, as `docker run` does).
#
# Checks, one PASS/FAIL line each:
#   serves      the image's own CMD (deploy/keel.toml): / through the [[pool]], /healthz, /static/; `keel check`
#   runs as keel  every process in the container's PID namespace has uid and gid 10001
#   no zombies  keel is PID 1; an orphan left by `podman exec`, a SIGKILLed worker and a SIGKILLed pool master
#               (whose workers then die) are all reaped, the pool comes back, and no process is left in state Z
#   TERM drains with a WSGI app mounted over the config (as deploy/README says: mount your own keel.toml): a request
#               to deploy/examples/wsgi/app.py's /sleep?s=2 in flight when `podman stop` sends TERM gets 200, exit 0
# then the image size. The first three share one container, the drain a second one.
#
# Where no container can start (the runtime is refused), the same image's root filesystem (`buildah from` + mount)
# runs as PID 1 of a new PID namespace (unshare --pid --fork --mount-proc + chroot as 10001:10001) and the script
# says which parts that leaves unchecked. IMAGE_TEST_MODE=chroot forces that path; KEEP_IMAGE=1 keeps the image
# (localhost/keel:image-test) afterwards; IMAGE_TEST_TIMEOUT (default 1200 s) bounds the whole run.
#
#   deploy/image-test.sh          # uses the newest dist/keel-*.tar.gz (run deploy/build-dist.sh first)
set -euo pipefail
self=$(readlink -f "$0")
root=$(cd "$(dirname "$self")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "image-test.sh: run as root (debootstrap, buildah, podman)" >&2; exit 2; }

# The whole run is bounded: the inner run gets TERM (and cleans up) after IMAGE_TEST_TIMEOUT seconds.
if [ -z "${KEEL_IMAGE_TEST_INNER:-}" ]; then
    limit=${IMAGE_TEST_TIMEOUT:-1200}
    rc=0; KEEL_IMAGE_TEST_INNER=1 timeout -k 30 "$limit" "$self" "$@" || rc=$?
    [ "$rc" != 124 ] || echo "FAIL image-test.sh: not done within $limit s (IMAGE_TEST_TIMEOUT)"
    exit "$rc"
fi

started=$(date +%s)
# What this machine cannot do (no package mirror, no namespaces) is a SKIP with its reason, not a failure; a check
# that runs and fails is a FAIL.
skip() {
    [ "${failures:-0}" = 0 ] || { echo "FAIL image-test.sh: $* after $failures failed checks"; exit 1; }
    echo "SKIP image-test.sh: $*; nothing more was checked"; exit 0
}
missing=()
for tool in debootstrap buildah podman runc curl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
command -v ss >/dev/null || missing+=(iproute2)
if [ ${#missing[@]} -gt 0 ]; then
    echo "image-test.sh: installing ${missing[*]} (apt)"
    DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || skip "apt-get could not install ${missing[*]}"
fi
tarball=$(ls -t "$root"/dist/keel-*-linux-*.tar.gz 2>/dev/null | head -1 || true)
[ -n "$tarball" ] || { echo "image-test.sh: no dist/keel-*.tar.gz: run deploy/build-dist.sh first" >&2; exit 2; }

# Global flags: vfs storage (no overlay or fuse needed), cgroupfs (no systemd), events in a file (no journald).
P=(--storage-driver vfs --cgroup-manager cgroupfs --events-backend file)
B=(--storage-driver vfs)
image=localhost/keel:image-test
cache=$root/.build-image
work=$(mktemp -d /tmp/keel-image.XXXXXX)
chmod 0755 "$work"   # the drain container bind-mounts files from here; uid 10001 must reach them
containers=() builders=()
failures=0
mode=${IMAGE_TEST_MODE:-podman}
cleanup() {
    set +e
    for pid in $(jobs -p); do kill -KILL "$pid" 2>/dev/null; done   # only our own live jobs: curl, unshare
    for name in "${containers[@]}"; do timeout 60 podman "${P[@]}" rm -f -t 0 "$name" >/dev/null 2>&1; done
    for ctr in "${builders[@]}"; do
        timeout 60 buildah "${B[@]}" umount "$ctr" >/dev/null 2>&1; timeout 60 buildah "${B[@]}" rm "$ctr" >/dev/null 2>&1
    done
    [ -n "${KEEP_IMAGE:-}" ] || timeout 60 podman "${P[@]}" rmi -f "$image" >/dev/null 2>&1
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
# wait_for SECONDS COMMAND...: polls every 0.2 s until COMMAND succeeds; 1 when the deadline passes first.
wait_for() {
    local deadline=$(( $(date +%s) + $1 )); shift
    until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.2; done
}
mib() { echo $(( ($1 + 524288) / 1048576 )); }

# --- the root filesystem (cached; made again when the package list changes) ------------------------------------
packages=ca-certificates,libssl3,zlib1g,libpython3.11,python3
if [ ! -x "$cache/rootfs/bin/sh" ] || [ "$(cat "$cache/packages" 2>/dev/null)" != "$packages" ]; then
    echo "image-test.sh: debootstrap --variant=minbase bookworm + $packages (once; cached in $cache)"
    mkdir -p "$cache"
    rm -rf "$cache/rootfs" "$cache/rootfs.partial"
    t0=$(date +%s)
    timeout 900 debootstrap --variant=minbase --include="$packages" bookworm "$cache/rootfs.partial" \
        http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 \
        || skip "debootstrap could not make the root filesystem from Debian's mirror: $(tail -1 "$cache/debootstrap.log")"
    mv "$cache/rootfs.partial" "$cache/rootfs"
    echo "$packages" > "$cache/packages"
    echo "image-test.sh: root filesystem made in $(( $(date +%s) - t0 )) s"
fi

# --- the image: deploy/Dockerfile's runtime stage, with the dist binary ------------------------------------------
timeout 60 podman "${P[@]}" rmi -f "$image" >/dev/null 2>&1 || true
ctr=$(timeout 60 buildah "${B[@]}" from scratch); builders+=("$ctr")
mnt=$(timeout 60 buildah "${B[@]}" mount "$ctr")
cp -a "$cache/rootfs/." "$mnt/"
rm -rf "$mnt"/var/cache/apt/* "$mnt"/var/lib/apt/lists/* "$mnt"/usr/share/doc/* "$mnt"/usr/share/man/* \
    "$mnt"/usr/share/locale/* "$mnt"/var/log/*.log "$mnt"/debootstrap
# The Dockerfile's user: keel:keel, 10001:10001 (the k8s manifests' runAsUser/runAsGroup), no home, no shell.
chroot "$mnt" groupadd --system --gid 10001 keel
chroot "$mnt" useradd --system --uid 10001 --gid keel --no-create-home --home-dir /nonexistent \
    --shell /usr/sbin/nologin keel 2> >(grep -v 'greater than SYS_UID_MAX' >&2)   # 10001 is above the system range: meant
install -d -o 10001 -g 10001 -m 0755 "$mnt/run/keel"
tar -xzf "$tarball" -C "$work"
install -m 0755 "$work"/keel-*/keel "$mnt/usr/local/bin/keel"
install -D -m 0644 "$root/deploy/keel.toml" "$mnt/etc/keel/keel.toml"
mkdir -p "$mnt/srv/keel"
cp -R "$root/deploy/public" "$mnt/srv/keel/public"
chown -R 0:0 "$mnt/srv/keel/public"
rootfs_mib=$(du -sm "$mnt" | cut -f1)
keel_mib=$(du -m "$mnt/usr/local/bin/keel" | cut -f1)
timeout 60 buildah "${B[@]}" config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --user keel --workingdir /srv/keel --port 8080 --stop-signal SIGTERM \
    --entrypoint '["keel"]' --cmd '["--config", "/etc/keel/keel.toml"]' "$ctr"
timeout 60 buildah "${B[@]}" umount "$ctr" >/dev/null
timeout 300 buildah "${B[@]}" commit -q "$ctr" "$image" >/dev/null
size=$(timeout 60 podman "${P[@]}" image inspect --format '{{.Size}}' "$image")
timeout 300 podman "${P[@]}" save -q --format docker-archive -o "$work/image.tar" "$image"
packed=$(gzip -6 -c "$work/image.tar" | wc -c)
rm -f "$work/image.tar"
echo "image $image: $(mib "$size") MiB ($(mib "$packed") MiB gzipped, as pushed); root filesystem $rootfs_mib MiB, keel $keel_mib MiB"

# --- running it ------------------------------------------------------------------------------------------------
# Without CAP_SYS_RESOURCE (this sandbox's root lacks it) the runtime may not raise a hard limit above its own, and
# podman 4.3's defaults for root, nofile 1048576 and nproc 32768, may be above (here nofile: the hard limit is 20000):
# our own hard limits, at most those defaults, are given instead. crun refuses hybrid cgroup v1/v2 hosts with a controller in v2; runc does
# not, so runc is tried next.
ulimits=()
if (( ((16#$(awk '/^CapEff:/ {print $2}' /proc/self/status)) >> 24 & 1) == 0 )); then
    hard_nproc=$(ulimit -Hu); [ "$hard_nproc" = unlimited ] || [ "$hard_nproc" -gt 32768 ] && hard_nproc=32768
    hard_nofile=$(ulimit -Hn); [ "$hard_nofile" = unlimited ] || [ "$hard_nofile" -gt 1048576 ] && hard_nofile=1048576
    ulimits=(--ulimit "nofile=$hard_nofile:$hard_nofile" --ulimit "nproc=$hard_nproc:$hard_nproc")
fi
runtimes=(crun runc)
runtime=
free_port() {
    local p
    while :; do p=$((20000 + RANDOM % 20000)); [ -z "$(ss -Htln "sport = :$p")" ] && { echo "$p"; return; }; done
}
# start NAME [podman run options] -- [keel arguments]: one container from the image, published on a free loopback
# port ($url); in chroot mode the image's root filesystem under unshare + chroot (keel given --listen for the port).
start() {
    local name=$1 options=() rt out; shift
    while [ "$1" != -- ]; do options+=("$1"); shift; done; shift
    port=$(free_port); url=http://127.0.0.1:$port
    if [ "$mode" = podman ]; then
        for rt in "${runtimes[@]}"; do
            timeout 60 podman "${P[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
            containers+=("$name")
            if out=$(timeout 120 podman "${P[@]}" --runtime "$rt" run -d --name "$name" "${ulimits[@]}" \
                    -p "127.0.0.1:$port:8080" "${options[@]}" "$image" "$@" 2>&1); then
                runtimes=("$rt"); runtime=$rt; return 0
            fi
            echo "note: podman run with $rt failed: $(echo "$out" | tail -1)"
        done
        echo "note: no container runtime could start the image: running its root filesystem under unshare + chroot"
        mode=chroot
    fi
    # chroot mode: a fresh container of the committed image (its files, its /etc/passwd), run by hand.
    local fctr fmnt
    fctr=$(timeout 60 buildah "${B[@]}" from "$image"); builders+=("$fctr")
    fmnt=$(timeout 60 buildah "${B[@]}" mount "$fctr")
    for option in "${options[@]}"; do  # -v SRC:DST[:ro] become copies
        case $option in /*:/*) src=${option%%:*}; rest=${option#*:}; install -D -m 0644 "$src" "$fmnt/${rest%%:*}";; esac
    done
    [ $# -gt 0 ] || set -- --config /etc/keel/keel.toml
    unshare --pid --fork --kill-child --mount-proc="$fmnt/proc" \
        chroot --userspec=10001:10001 --groups=10001 "$fmnt" /usr/bin/env -i \
        PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/nonexistent \
        /bin/sh -c 'cd /srv/keel && exec keel "$@"' keel "$@" --listen "127.0.0.1:$port" >"$work/$name.log" 2>&1 &
    unshared=$!
    wait_for 10 pgrep -P "$unshared" \
        || { ! kill -0 "$unshared" 2>/dev/null && grep -q '^unshare:' "$work/$name.log" \
            && skip "no container runtime, and unshare is refused here: $(head -1 "$work/$name.log")"; } || true
}
pid1() {
    if [ "$mode" = podman ]; then timeout 30 podman "${P[@]}" inspect --format '{{.State.Pid}}' "$1"
    else pgrep -P "$unshared"; fi
}
logs() { if [ "$mode" = podman ]; then timeout 30 podman "${P[@]}" logs "$1" 2>&1; else cat "$work/$1.log"; fi; }
# stop NAME: TERM to PID 1 (docker stop) and the wait for its exit; its exit code in $stop_code.
stop() {
    if [ "$mode" = podman ]; then
        timeout 90 podman "${P[@]}" stop -t 70 "$1" >/dev/null
        stop_code=$(timeout 30 podman "${P[@]}" inspect --format '{{.State.ExitCode}}' "$1")
    else
        kill -TERM "$(pid1 "$1")"
        wait_for 75 exited "$unshared" || kill -KILL "$unshared"
        stop_code=0; wait "$unshared" || stop_code=$?
    fi
}
# exec_in NAME COMMAND...: a process inside the container, as its user (podman exec, or nsenter into PID 1's).
exec_in() {
    local name=$1; shift
    if [ "$mode" = podman ]; then timeout 30 podman "${P[@]}" exec "$name" "$@"
    else timeout 30 nsenter --target "$(pid1 "$name")" --pid --root --wd --setuid 10001 --setgid 10001 -- "$@"; fi
}
# Every process in the PID namespace of host pid $1, as host pids.
ns_pids() {
    local ns d; ns=$(readlink "/proc/$1/ns/pid") || return 0
    for d in /proc/[0-9]*; do [ "$(readlink "$d/ns/pid" 2>/dev/null)" = "$ns" ] && echo "${d#/proc/}"; done; return 0
}
exited() { [ ! -e "/proc/$1" ] || [ "$(state "$1")" = Z ]; }
state() { sed -n 's/^.*) \(.\).*/\1/p' "/proc/$1/stat" 2>/dev/null; }
zombies() { local p; for p in $(ns_pids "$1"); do [ "$(state "$p")" = Z ] && echo "$p($(cat "/proc/$p/comm" 2>/dev/null))"; done; return 0; }
no_zombies() { [ -z "$(zombies "$1")" ]; }
serves() { [ "$(curl -s --max-time 3 "$url/")" = "Hello world!" ]; }
pool_master() { local p; for p in $(pgrep -P "$1"); do grep -qa pool "/proc/$p/cmdline" && { echo "$p"; return; }; done; return 0; }
workers_of() { pgrep -P "$1" | wc -l; }
# replaced PID OLD N: OLD is gone and PID has N children again (a worker respawned by its master).
replaced() { [ ! -e "/proc/$2" ] && [ "$(workers_of "$1")" -ge "$3" ]; }
# pool_back KEEL OLD N: the pool master OLD is gone and a new one under KEEL has N workers.
pool_back() { local m; [ ! -e "/proc/$2" ] && m=$(pool_master "$1") && [ -n "$m" ] && [ "$(workers_of "$m")" -ge "$3" ]; }
called() { logs drain | grep -q 'sleep?s=2 called'; }

# --- 1: the image as it is: its CMD, deploy/keel.toml ----------------------------------------------------------
start site --
where="$mode${runtime:+, $runtime}"
if [ "$mode" = podman ]; then reach="published as 127.0.0.1:$port"; else reach="given --listen 127.0.0.1:$port (no port mapping)"; fi
if wait_for 30 curl -sf --max-time 2 "$url/healthz"; then
    checked=$(exec_in site /usr/local/bin/keel check --config /etc/keel/keel.toml 2>&1 || true)
    root_body=$(curl -s --max-time 5 "$url/"); health=$(curl -s --max-time 5 "$url/healthz")
    static=$(curl -s --max-time 5 -o /dev/null -w '%{http_code} %{content_type}' "$url/static/")
    if [ "$root_body" = "Hello world!" ] && [ "$health" = ok ] && [ "${static%%;*}" = "200 text/html" ] \
        && [[ $checked == *"configuration OK"* ]]; then
        pass "serves ($where): the image's CMD (deploy/keel.toml) on 8080, $reach: / \"$root_body\" from the hello [[pool]], /healthz \"$health\", /static/ $static; $(echo "$checked" | tail -1)"
    else
        fail "serves ($where): / \"$root_body\", /healthz \"$health\", /static/ $static, check: $checked"
    fi
else
    fail "serves ($where): no answer on $url/healthz within 30 s: $(logs site | tail -3 | tr '\n' ' ')"
fi

pid=$(pid1 site)
# Each process's real, effective, saved and filesystem ids: all 10001.
ids=$(for p in $(ns_pids "$pid"); do awk '/^[UG]id:/ {print $1, $2, $3, $4, $5}' "/proc/$p/status" 2>/dev/null; done | sort -u)
count=$(ns_pids "$pid" | wc -l)
if [ "$(echo "$ids" | tr '\n' ' ')" = "Gid: 10001 10001 10001 10001 Uid: 10001 10001 10001 10001 " ]; then
    pass "runs as keel: all $count processes in the container's PID namespace have uid and gid 10001 (keel:keel)"
else
    fail "runs as keel: $count processes, ids: $(echo "$ids" | tr '\n' ';')"
fi

# PID 1 and its three kinds of dead children. An orphan: `sh -c 'sleep 1 &'` exits at once, so its sleep is
# re-parented to the namespace's init, keel (a subreaper outside the namespace, conmon, cannot take it).
zombie_notes=() zombie_ok=true
nspid=$(awk '/^NSpid:/ {print $NF}' "/proc/$pid/status"); comm=$(cat "/proc/$pid/comm")
[ "$nspid" = 1 ] && [ "$comm" = keel ] || { zombie_ok=false; zombie_notes+=("PID 1 is $comm (pid $nspid in the namespace)"); }
exec_in site /bin/sh -c 'sleep 1 >/dev/null 2>&1 & exit 0' || true
orphan=$(for p in $(pgrep -P "$pid"); do [ "$(cat "/proc/$p/comm")" = sleep ] && echo "$p"; done)
if [ -n "$orphan" ]; then
    wait_for 10 test ! -e "/proc/$orphan" && zombie_notes+=("an orphan from exec adopted by keel and reaped") \
        || { zombie_ok=false; zombie_notes+=("the orphan $orphan is $(state "$orphan")"); }
else
    zombie_ok=false; zombie_notes+=("no orphan sleep under keel")
fi
master=$(pool_master "$pid")
workers=$( [ -n "$master" ] && workers_of "$master" || echo 0 )
victim=$( [ -n "$master" ] && pgrep -P "$master" | head -1 || true)
if [ -n "$victim" ]; then
    kill -KILL "$victim"
    if wait_for 20 replaced "$master" "$victim" "$workers"; then
        zombie_notes+=("a SIGKILLed worker reaped and replaced")
    else zombie_ok=false; zombie_notes+=("worker $victim: $(state "$victim"), $(workers_of "$master")/$workers workers"); fi
    orphans=$(pgrep -P "$master" | tr '\n' ' ')
    kill -KILL "$master"
    if wait_for 30 pool_back "$pid" "$master" "$workers"; then
        zombie_notes+=("a SIGKILLed pool master and its $workers workers reaped, the pool restarted")
    else zombie_ok=false; zombie_notes+=("pool master $master: $(state "$master"); workers $orphans"); fi
else
    zombie_ok=false; zombie_notes+=("no pool master or worker under keel")
fi
if ! wait_for 15 serves; then zombie_ok=false; zombie_notes+=("keel no longer serves /"); fi
left=$(zombies "$pid")
[ -z "$left" ] || { zombie_ok=false; zombie_notes+=("zombies: $left"); }
notes=$(IFS=';'; echo "${zombie_notes[*]}" | sed 's/;/; /g')
if $zombie_ok; then pass "no zombies: keel is PID 1; $notes; serves again; 0 processes in state Z of $(ns_pids "$pid" | wc -l)"
else fail "no zombies: $notes"; fi
stop site
[ "$mode" = podman ] && timeout 60 podman "${P[@]}" rm -f -t 0 site >/dev/null 2>&1 || true

# --- 2: TERM drains: a WSGI app and its config mounted over the image's ------------------------------------------
cat > "$work/wsgi.toml" <<'TOML'
[[listen]]
address = "0.0.0.0:8080"
[[pool]]
name = "app"
args = ["--socket", "/run/keel/app.sock", "--processes", "2", "--threads", "4", "--wsgi-file", "/srv/app/app.py"]
[[route]]
path = "/"
uwsgi = "unix:/run/keel/app.sock"
TOML
install -m 0644 "$root/deploy/examples/wsgi/app.py" "$work/app.py"
chmod 0644 "$work/wsgi.toml"
start drain -v "$work/wsgi.toml:/etc/keel/keel.toml:ro" -v "$work/app.py:/srv/app/app.py:ro" --
if wait_for 30 serves; then
    curl -s --max-time 60 -o /dev/null -w '%{http_code}' "$url/sleep?s=2" > "$work/inflight" & curler=$!
    # TERM only once the app has the request (it prints "… /sleep?s=2 called …").
    wait_for 10 called \
        || echo "note: the app's 'called' line did not appear within 10 s; TERM anyway"
    t0=$(date +%s%N)
    stop drain
    took=$(( ($(date +%s%N) - t0) / 1000000 ))
    wait "$curler" || true
    inflight=$(cat "$work/inflight")
    if [ "$inflight" = 200 ] && [ "$stop_code" = 0 ] && [ "$took" -lt 60000 ]; then
        pass "TERM drains: a /sleep?s=2 request to the WSGI app, in flight at TERM (stop signal), got 200; keel exited 0 after $took ms"
    else
        fail "TERM drains: in-flight answer '$inflight', exit code $stop_code, stop took $took ms: $(logs drain | tail -3 | tr '\n' ' ')"
    fi
else
    fail "TERM drains: the WSGI app did not answer on $url within 30 s: $(logs drain | tail -3 | tr '\n' ' ')"
fi

if [ "$mode" = chroot ]; then
    echo "not checked in a real container: the runtime's cgroups, seccomp, capability set and network namespace;"
    echo "  port publishing (keel was given --listen instead); podman exec and podman stop (nsenter and kill -TERM instead)"
fi
echo "image-test.sh ($where): $failures failed, $(( $(date +%s) - started )) s"
[ "$failures" = 0 ]
