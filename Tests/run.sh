#!/usr/bin/env bash
# Runs every Keel test. On a fresh Debian/Ubuntu machine it first installs what the tests need:
# nginx (the interop tests put the real nginx in front of keel-pool), uWSGI with its Python 3 plugin
# (keel in front of the real uWSGI), curl and openssl (the TLS tests use s_client and make certificates), and for
# WSGI: libpython3.11-dev, python3-flask, python3-venv.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v uwsgi >/dev/null || missing+=(uwsgi-core)
[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || missing+=(uwsgi-plugin-python3)
# keel-pool embeds Debian's libpython3.11; the WSGI tests run a Flask app in a venv made by /usr/bin/python3.
pkg-config --exists python3-embed || missing+=(libpython3.11-dev pkg-config)
# keel terminates TLS on the system OpenSSL.
pkg-config --exists openssl || missing+=(libssl-dev pkg-config)
/usr/bin/python3 -c "import flask" 2>/dev/null || missing+=(python3-flask)
/usr/bin/python3 -c "import venv, ensurepip" 2>/dev/null || missing+=(python3-venv)
# promtool checks both /metrics expositions; headless Chromium renders keel's status page.
command -v promtool >/dev/null || missing+=(prometheus)
command -v chromium >/dev/null || missing+=(chromium)
# h2load drives keel's HTTP/2 listeners (10,000 requests over 10 connections × 100 streams).
command -v h2load >/dev/null || missing+=(nghttp2-client)
# systemd-socket-activate passes keel and keel-pool their listening sockets as a socket unit does.
command -v systemd-socket-activate >/dev/null || missing+=(systemd)
# deploy/netns-test.sh makes namespaces and veth pairs; deploy/k8s/validate.sh parses the manifests with PyYAML.
command -v ip >/dev/null || missing+=(iproute2)
/usr/bin/python3 -c "import yaml" 2>/dev/null || missing+=(python3-yaml)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Tests/run.sh: installing ${missing[*]} (apt)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The async-worker tests' apps (FastAPI, Starlette, gevent, uvloop, websockets) and the HTTP/2 tests' frame writer (h2)
# from PyPI into a venv made by Debian's Python, once (KEEL_TEST_VENV points elsewhere to reuse one).
venv=${KEEL_TEST_VENV:-.build/test-venv}
if ! "$venv/bin/python3" -c "import fastapi, gevent, websockets, uvloop, h2" 2>/dev/null; then
    echo "Tests/run.sh: installing fastapi, gevent, uvloop, websockets, h2 into $venv (pip)" >&2
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check fastapi gevent uvloop websockets h2
fi

# Every phase is bounded (a hang fails that phase, with its output, instead of eating CI's 90 minutes), says how
# long it took, and runs even if an earlier one failed; the exit status is non-zero if any failed. Output is
# line-buffered, so what a phase printed last is there if it is stopped.
failed=()
phase() {
    local name=$1 limit=$2 started=$SECONDS code=0
    shift 2
    echo "== Tests/run.sh: $name (at most $((limit / 60)) min)" >&2
    timeout -k 30 "$limit" stdbuf -oL -eL "$@" || code=$?
    if [ "$code" = 0 ]; then
        echo "== Tests/run.sh: $name passed in $((SECONDS - started)) s" >&2
    else
        [ "$code" != 124 ] || echo "== Tests/run.sh: $name did not finish within $((limit / 60)) min: stopped" >&2
        echo "== Tests/run.sh: $name FAILED (exit $code) after $((SECONDS - started)) s" >&2
        failed+=("$name")
    fi
}

# The two parsers that read another process's bytes, under libFuzzer + AddressSanitizer for a bounded time.
phase "fuzz" 900 env SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}" Tests/Fuzz/run.sh

# Build once (the executables too: integration tests run the built keel-pool), then run all tests.
phase "build" 2400 swift build --build-tests
# keel-pool tune's integration tests and the HTTP/2 suite (h2load, floods) saturate both cores for tens of seconds
# (that is their job), so each runs on its own after the rest rather than beside timing-sensitive tests.
# The network-namespace test times failovers under load (read_timeout, passive health), so it runs alone too.
phase "tests" 1500 swift test --skip-build --disable-xctest --skip "IntegrationTests.TuneTests" \
    --skip "IntegrationTests.FrontHTTP2Tests" --skip "IntegrationTests.NetworkNamespaceTests"
phase "tune tests" 600 swift test --skip-build --disable-xctest --filter "IntegrationTests.TuneTests"
phase "HTTP/2 tests" 600 swift test --skip-build --disable-xctest --filter "IntegrationTests.FrontHTTP2Tests"
phase "network namespace test" 300 swift test --skip-build --disable-xctest --filter "IntegrationTests.NetworkNamespaceTests"
# The shipped artefacts: the single-binary tarball (its keel alone, in an empty environment), then the container
# image built from it and run (deploy/image-test.sh needs root for debootstrap, buildah and podman).
phase "single binary (deploy/build-dist.sh --check)" 1500 deploy/build-dist.sh --check
if [ "$(id -u)" = 0 ]; then
    phase "container image (deploy/image-test.sh)" 900 env IMAGE_TEST_TIMEOUT=840 deploy/image-test.sh
else
    echo "Tests/run.sh: deploy/image-test.sh skipped: it needs root" >&2
fi

if [ ${#failed[@]} -gt 0 ]; then
    echo "Tests/run.sh: FAILED: ${failed[*]}" >&2
    exit 1
fi
echo "Tests/run.sh: every phase passed in $SECONDS s" >&2
