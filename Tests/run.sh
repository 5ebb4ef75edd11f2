#!/usr/bin/env bash
# Runs every Keel test. On a fresh Debian/Ubuntu machine it first installs what the tests need:
# nginx (the interop tests put the real nginx in front of keel-pool), uWSGI with its Python 3 plugin
# (keel in front of the real uWSGI), curl and openssl (the TLS tests use s_client and make certificates).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

missing=()
[ -x /usr/sbin/nginx ] || command -v nginx >/dev/null || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
command -v uwsgi >/dev/null || missing+=(uwsgi-core)
[ -e /usr/lib/uwsgi/plugins/python3_plugin.so ] || missing+=(uwsgi-plugin-python3)
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "Tests/run.sh: installing ${missing[*]} (apt)" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Build once (the executables too: integration tests run the built keel-pool), then run all tests.
swift build --build-tests
swift test --skip-build --disable-xctest
