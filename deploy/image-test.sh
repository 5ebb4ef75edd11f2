#!/usr/bin/env bash
# Builds keel's container image for real and runs it (issue 19), as root, with no registry: the root filesystem is
# Debian 12 minbase made by debootstrap from Debian's mirror (cached in .build-image/), plus the runtime libraries
# keel loads (libssl3, zlib1g, libpython3.11), the user `keel` (uid 10001) and the single keel binary from
# deploy/build-dist.sh; buildah (vfs storage, no overlay needed) turns it into an image, podman runs it.
# Checks, one PASS/FAIL line each: it serves (a WSGI app through keel's own [[pool]]); TERM (`podman stop`) drains
# an in-flight request; keel as PID 1 leaves no zombie after a worker is killed; every process runs as `keel`.
# Then the image size. deploy/Dockerfile builds the same layout for users with a registry.
#
#   deploy/image-test.sh          # uses the newest dist/keel-*.tar.gz (run deploy/build-dist.sh first)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
[ "$(id -u)" = 0 ] || { echo "image-test.sh: run as root (debootstrap, buildah, podman)" >&2; exit 2; }
missing=()
for tool in debootstrap buildah podman; do command -v "$tool" >/dev/null || missing+=("$tool"); done
if [ ${#missing[@]} -gt 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" uidmap >/dev/null; fi
tarball=$(ls -t "$root"/dist/keel-*-linux-*.tar.gz 2>/dev/null | head -1 || true)
[ -n "$tarball" ] || { echo "image-test.sh: no dist/keel-*.tar.gz: run deploy/build-dist.sh first" >&2; exit 2; }

storage=(--storage-driver vfs)
image=localhost/keel:image-test
name=keel-image-test-$$
cache=$root/.build-image
work=$(mktemp -d /tmp/keel-image.XXXXXX)
failures=0
started=$(date +%s)
cleanup() {
    podman "${storage[@]}" rm -f -t 0 "$name" >/dev/null 2>&1 || true
    [ -n "${ctr:-}" ] && buildah "${storage[@]}" rm "$ctr" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT INT TERM
KEEP_WORK=${KEEP_WORK:-}
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }
wait_for() { local deadline=$(( $(date +%s) + $1 )); shift; until "$@" >/dev/null 2>&1; do [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.2; done; }

# --- the root filesystem ---------------------------------------------------------------------------------------
if [ ! -x "$cache/rootfs/bin/sh" ]; then
    mkdir -p "$cache"
    debootstrap --variant=minbase --include=libssl3,zlib1g,libpython3.11,ca-certificates bookworm "$cache/rootfs" \
        http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 || { echo "image-test.sh: debootstrap failed: $cache/debootstrap.log" >&2; exit 1; }
fi
stage=$work/rootfs
cp -a "$cache/rootfs" "$stage"
rm -rf "$stage"/var/cache/apt/* "$stage"/var/lib/apt/lists/* "$stage"/usr/share/doc/* "$stage"/usr/share/man/* "$stage"/usr/share/locale/*
chroot "$stage" useradd --system --uid 10001 --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin keel
tar -xzf "$tarball" -C "$work"
install -m 0755 "$work"/keel-*/keel "$stage/usr/local/bin/keel"
install -d -o 10001 -g 10001 -m 0755 "$stage/run/keel"
install -d "$stage/etc/keel" "$stage/srv/app"
install -m 0644 "$root/deploy/examples/wsgi/app.py" "$stage/srv/app/app.py"
cat > "$stage/etc/keel/keel.toml" <<'TOML'
[[listen]]
address = "0.0.0.0:8080"
[limits]
graceful_timeout = "20s"
[[pool]]
name = "app"
args = ["--socket", "/run/keel/app.sock", "--processes", "2", "--threads", "4", "--wsgi-file", "/srv/app/app.py"]
[[route]]
path = "/"
uwsgi = "unix:/run/keel/app.sock"
TOML

# --- the image -------------------------------------------------------------------------------------------------
buildah "${storage[@]}" rmi -f "$image" >/dev/null 2>&1 || true
ctr=$(buildah "${storage[@]}" from scratch)
# Copied through the container's mount, not `buildah copy`, which would make every file root's (/run/keel is keel's).
cp -a "$stage/." "$(buildah "${storage[@]}" mount "$ctr")/"
buildah "${storage[@]}" config --user keel --workingdir /srv --port 8080 --stop-signal SIGTERM \
    --entrypoint '["/usr/local/bin/keel"]' --cmd '["--config", "/etc/keel/keel.toml"]' "$ctr"
buildah "${storage[@]}" commit -q "$ctr" "$image" >/dev/null
size=$(podman "${storage[@]}" image inspect --format '{{.Size}}' "$image")
echo "image $image: $((size / 1024 / 1024)) MiB ($(du -sm "$stage" | cut -f1) MiB root filesystem, keel $(du -m "$stage/usr/local/bin/keel" | cut -f1) MiB)"

# --- run it ----------------------------------------------------------------------------------------------------
# A real container first; where the runtime may not set rlimits (this VM's sandbox refuses crun's setrlimit), the
# image's own root filesystem (`buildah mount`) runs under unshare --pid --fork --mount-proc + chroot as uid 10001:
# the same files, PID 1 and user, without the container runtime's cgroups and seccomp.
port=$((20000 + RANDOM % 20000))
url=http://127.0.0.1:$port
mode=podman
if ! podman "${storage[@]}" run -d --name "$name" --network host --cgroup-manager cgroupfs --events-backend file \
    --ulimit host "$image" --config /etc/keel/keel.toml --listen "127.0.0.1:$port" >"$work/podman.out" 2>&1; then
    echo "podman run failed ($(tail -1 "$work/podman.out")): running the image's root filesystem under unshare + chroot"
    mode=chroot
    mnt=$(buildah "${storage[@]}" mount "$ctr")
    unshare --pid --fork --mount-proc="$mnt/proc" chroot --userspec=10001:10001 "$mnt" \
        /usr/local/bin/keel --config /etc/keel/keel.toml --listen "127.0.0.1:$port" >"$work/chroot.log" 2>&1 &
    unshared=$!
fi
container_pid1() {
    if [ "$mode" = podman ]; then podman "${storage[@]}" inspect --format '{{.State.Pid}}' "$name"; else pgrep -P "$unshared"; fi
}
container_stop() {  # TERM to PID 1 (docker stop); its exit code in $stop_code (not in a subshell: wait needs ours)
    if [ "$mode" = podman ]; then
        podman "${storage[@]}" stop -t 30 "$name" >/dev/null
        stop_code=$(podman "${storage[@]}" inspect --format '{{.State.ExitCode}}' "$name")
    else
        kill -TERM "$(container_pid1)"
        stop_code=0; wait "$unshared" || stop_code=$?
    fi
}
container_log() { if [ "$mode" = podman ]; then podman "${storage[@]}" logs "$name" 2>&1; else cat "$work/chroot.log"; fi; }
if wait_for 30 curl -sf --max-time 2 "$url/"; then pass "serves ($mode): $(curl -s "$url/" | head -1) through keel's [[pool]] from the image"
else fail "serves ($mode): no answer on $url within 30 s: $(container_log | tail -3 | tr '\n' ' ')"; fi

pid1=$(container_pid1)
tree() { local p; echo "$1"; for p in $(pgrep -P "$1"); do tree "$p"; done; }
uids=$(for p in $(tree "$pid1"); do awk '/^Uid:/ {print $2}' "/proc/$p/status"; done | sort -u | tr '\n' ' ')
if [ "$uids" = "10001 " ]; then pass "runs as keel: every process of the container has uid 10001 ($(tree "$pid1" | wc -l) processes)"
else fail "runs as keel: uids $uids"; fi

# A worker killed: the pool replaces it, and nothing stays a zombie under keel (PID 1).
worker=$(tree "$pid1" | tail -1)
kill -KILL "$worker"
sleep 2
zombies=$(for p in $(tree "$pid1"); do awk '{print $3}' "/proc/$p/stat" 2>/dev/null; done | grep -c Z || true)
if [ "$zombies" = 0 ] && curl -sf --max-time 5 "$url/" >/dev/null; then pass "no zombies: a killed worker was reaped and replaced, keel still serves"
else fail "no zombies: $zombies zombie processes after killing worker $worker"; fi

# docker stop-style TERM while a 2 s request is in flight: it finishes with 200, keel exits 0.
curl -s --max-time 30 -o /dev/null -w '%{http_code}' "$url/sleep?s=2" > "$work/inflight" & curler=$!
sleep 0.5
container_stop
code=$stop_code
wait "$curler" || true
if [ "$(cat "$work/inflight")" = 200 ] && [ "$code" = 0 ]; then pass "TERM drains: the in-flight request got 200, keel exited 0"
else fail "TERM drains: in-flight answer $(cat "$work/inflight"), exit code $code"; fi

echo "image-test.sh ($mode): $failures failed, $(( $(date +%s) - started )) s"
[ "$failures" = 0 ]
