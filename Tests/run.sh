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

# The two parsers that read another process's bytes, under libFuzzer + AddressSanitizer for a bounded time
# (Tests/Fuzz/run.sh; first, so swift test's summary is the last line).
SECONDS_PER_TARGET=${FUZZ_SECONDS:-30} Tests/Fuzz/run.sh

# Build once (the executables too: integration tests run the built keel-pool), then run all tests.
swift build --build-tests
# keel-pool tune's integration tests and the HTTP/2 suite (h2load, floods) saturate both cores for tens of seconds
# (that is their job), so each runs on its own after the rest rather than beside timing-sensitive tests.
# The network-namespace test times failovers under load (a 5 s read_timeout, passive health), so it runs alone too.
swift test --skip-build --disable-xctest --skip "IntegrationTests.TuneTests" --skip "IntegrationTests.FrontHTTP2Tests" \
    --skip "IntegrationTests.NetworkNamespaceTests"
swift test --skip-build --disable-xctest --filter "IntegrationTests.TuneTests"
swift test --skip-build --disable-xctest --filter "IntegrationTests.FrontHTTP2Tests"
swift test --skip-build --disable-xctest --filter "IntegrationTests.NetworkNamespaceTests"
# The shipped artefacts: the single-binary tarball (its keel alone, in an empty environment), then the container
# image built from it and run (deploy/image-test.sh needs root for debootstrap, buildah and the chroot).
deploy/build-dist.sh --check
if [ "$(id -u)" = 0 ]; then deploy/image-test.sh; else echo "Tests/run.sh: deploy/image-test.sh skipped: it needs root" >&2; fi
