#!/usr/bin/env bash
# Certificates for testing pbx-portal over HTTPS: a CA made on this machine and two server
# certificates it signed, for the tests of tests/it/https.rs and the browser tests.
#
#   scripts/test-ca.sh DIR     makes (or keeps) them in DIR and prints DIR
#
# DIR then holds
#   ca.crt                     the CA (trust this one: it signed both server certificates)
#   server.crt, server.key     a server certificate for IP 127.0.0.1, ::1 and DNS localhost
#   server2.crt, server2.key   another, same names, other key and serial: the renewal
# The CA's key is deleted once both are signed: nothing else can ever be signed by it.
# Keys are PKCS#8 (server) and SEC1 (server2), both P-256, mode 0600.
#
# Idempotent and quick: certificates valid for another 7 days (of 90) are kept; otherwise
# all are made again in a temporary directory, checked, then moved in, under a lock (two
# runs at the same time, e.g. two checkouts' tests, make them once). Tests copy the files
# they serve into their own directory.
set -euo pipefail

dir=${1:?usage: scripts/test-ca.sh DIR}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

valid() {
    local d=$1 n
    [ -s "$d/ca.crt" ] || return 1
    for n in server server2; do
        [ -s "$d/$n.crt" ] && [ -s "$d/$n.key" ] || return 1
        openssl x509 -in "$d/$n.crt" -noout -checkend $((7 * 86400)) >/dev/null 2>&1 || return 1
        openssl verify -CAfile "$d/ca.crt" "$d/$n.crt" >/dev/null 2>&1 || return 1
    done
}

# Server certificate $2.crt (key $2.key, key form $3) signed by the CA in $1.
server_cert() {
    local tmp=$1 name=$2 form=$3
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$tmp/$name.pkcs8" 2>/dev/null
    if [ "$form" = sec1 ]; then
        openssl ec -in "$tmp/$name.pkcs8" -out "$tmp/$name.key" 2>/dev/null
        rm -f "$tmp/$name.pkcs8"
    else
        mv "$tmp/$name.pkcs8" "$tmp/$name.key"
    fi
    openssl req -new -key "$tmp/$name.key" -out "$tmp/$name.csr" -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' 'subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost' 'basicConstraints=critical,CA:FALSE' \
        'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' >"$tmp/$name.ext"
    openssl x509 -req -in "$tmp/$name.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 90 -extfile "$tmp/$name.ext" \
        -out "$tmp/$name.crt" 2>/dev/null
    rm -f "$tmp/$name.csr" "$tmp/$name.ext"
}

make() {
    local tmp stamp
    tmp=$(mktemp -d "$dir/.new.XXXXXX")
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$tmp/ca.key" -out "$tmp/ca.crt" -days 90 -subj "/CN=pbx-portal HTTPS test CA $stamp" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    server_cert "$tmp" server pkcs8
    server_cert "$tmp" server2 sec1
    rm -f "$tmp/ca.key" "$tmp/ca.srl"
    chmod 0644 "$tmp"/*.crt
    chmod 0600 "$tmp"/*.key
    valid "$tmp" || { echo "test-ca.sh: could not make the certificates" >&2; rm -rf "$tmp"; return 1; }
    local f
    for f in server.key server2.key ca.crt server.crt server2.crt; do
        mv -f "$tmp/$f" "$dir/$f"
    done
    rmdir "$tmp"
}

exec 9>"$dir/.lock"
flock 9
valid "$dir" || make
flock -u 9
echo "$dir"
