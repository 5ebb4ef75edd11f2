#!/usr/bin/env bash
# Builds the single-binary distribution: dist/keel-<version>-linux-<arch>.tar.gz and its .sha256.
#
#   deploy/build-dist.sh            # release build with the Swift runtime linked in, then the tarball
#   deploy/build-dist.sh --check    # ... then runs the "single binary" tests against the packaged keel, alone
#
# The tarball holds one executable, `keel` (`keel pool …` is keel-pool, and keel starts its [[pool]]s from itself),
# the example keel.toml and the systemd units. What the binary still needs from the system is printed (ldd) and
# listed in README.md: libssl3, zlib and libpython3.11.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
[ "${1:-}" = "--check" ] && check=true

version=$(sed -n 's/.*public static let version = "\(.*\)"/\1/p' Sources/KeelSystem/BuildInfo.swift)
arch=$(uname -m)
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
if [ "$commit" != unknown ] && ! git diff --quiet HEAD -- Sources Package.swift 2>/dev/null; then commit="$commit-dirty"; fi
scratch=${KEEL_DIST_SCRATCH:-.build-dist}
name="keel-$version-linux-$arch"

# The commit reaches `keel version` through a C define (SwiftPM caches the manifest, so Package.swift cannot know it).
swift build -c release --product keel --static-swift-stdlib --scratch-path "$scratch" \
    -Xcc "-DKEEL_GIT_COMMIT=\"$commit\""
binary="$scratch/release/keel"

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$name/systemd"
install -m 0755 "$binary" "$stage/$name/keel"
strip "$stage/$name/keel"
install -m 0644 deploy/keel.toml "$stage/$name/keel.toml"
install -m 0644 deploy/systemd/*.service deploy/systemd/*.socket "$stage/$name/systemd/"
cat > "$stage/$name/README" <<TEXT
keel $version ($commit), linux $arch: the front proxy and its application pools in one executable.

  ./keel                       the demo on http://127.0.0.1:8080/ and https://127.0.0.1:8443/
  ./keel --config keel.toml    your site (keel check --config keel.toml validates it)
  ./keel pool --help           keel-pool, the application server, from the same binary
  ./keel version               the versions of everything below

Needs from the system (the Swift runtime is linked in): libssl3 (OpenSSL 3), zlib1g, libpython3.11
(keel links it: WSGI/ASGI apps run on it). On Debian 12: apt install libssl3 zlib1g libpython3.11.
systemd/: keel.service (+ keel.socket for socket activation), keel-pool.service (+ keel-pool.socket).
TEXT

mkdir -p dist
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" -C "$stage" -czf "dist/$name.tar.gz" "$name"
(cd dist && sha256sum "$name.tar.gz" > "$name.tar.gz.sha256")

echo "dist/$name.tar.gz: $(du -k "dist/$name.tar.gz" | cut -f1) KiB; keel: $(du -k "$stage/$name/keel" | cut -f1) KiB (stripped)"
echo "dist/$name.tar.gz.sha256: $(cut -d' ' -f1 "dist/$name.tar.gz.sha256")"
echo "shared libraries keel loads (ldd):"
ldd "$stage/$name/keel" | sed 's/^/  /'
"$stage/$name/keel" version | sed 's/^/  /'

if $check; then
    # The packaged binary, unpacked alone into an empty directory by the tests themselves.
    unpacked=$(mktemp -d)
    tar -xzf "dist/$name.tar.gz" -C "$unpacked"
    swift build --build-tests
    KEEL_DIST_BINARY="$unpacked/$name/keel" swift test --skip-build --disable-xctest --filter "IntegrationTests.SingleBinaryTests"
    rm -rf "$unpacked"
fi
