#!/usr/bin/env bash
# Makes a local development CA and a certificate for localhost (plus any names given as arguments), signed by it.
# Usage: certs/make-dev-cert.sh [NAME ...]   e.g. certs/make-dev-cert.sh app.test '*.app.test' 192.168.1.20
# Output in certs/dev/ (git-ignored): ca.pem + ca.key (the CA: trust ca.pem in your browser or with curl --cacert),
# cert.pem (leaf + CA chain, what keel's --cert takes) and key.pem (keel's --key). ECDSA P-256, leaf valid 825 days.
# The CA is kept between runs so a trusted CA stays trusted; delete certs/dev/ to start over.
set -euo pipefail
command -v openssl >/dev/null || { echo "make-dev-cert.sh: openssl is needed (apt install openssl)" >&2; exit 1; }
out="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/dev"
mkdir -p "$out"
chmod 700 "$out"
cd "$out"

if [ ! -s ca.key ] || [ ! -s ca.pem ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ca.key 2>/dev/null
    chmod 600 ca.key
    openssl req -x509 -new -key ca.key -sha256 -days 3650 -subj "/O=Keel development CA/CN=Keel dev CA $(hostname)" \
        -addext "basicConstraints=critical,CA:TRUE,pathlen:0" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out ca.pem
    echo "made a development CA: $out/ca.pem (trust it to make the dev certificate valid)"
fi

names=("localhost" "$@")
san="IP:127.0.0.1,IP:::1"
for name in "${names[@]}"; do
    if [[ "$name" =~ ^[0-9.]+$ || "$name" == *:* ]]; then san+=",IP:$name"; else san+=",DNS:$name"; fi
done

openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem 2>/dev/null
chmod 600 key.pem
openssl req -new -key key.pem -subj "/O=Keel development/CN=${names[0]}" -out leaf.csr
cat > leaf.ext <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectAltName=$san
EXT
openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 825 -sha256 -extfile leaf.ext \
    -out leaf.pem 2>/dev/null
cat leaf.pem ca.pem > cert.pem
rm -f leaf.csr leaf.ext leaf.pem ca.srl
echo "made $out/cert.pem and $out/key.pem for ${san//,/ }"
echo "run:   keel --tls-listen 127.0.0.1:8443 --cert $out/cert.pem --key $out/key.pem --pool \"--socket /tmp/app.sock --app hello\""
echo "check: curl --cacert $out/ca.pem https://localhost:8443/"
