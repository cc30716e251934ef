#!/usr/bin/env bash
# TLS on the test PostgreSQL, with a certificate authority made on this machine, so that
# the tests and the benchmark can connect with sslmode=verify-full.
#
#   scripts/pg-tls.sh          PostgreSQL found or installed (pg.sh), TLS on; prints the
#                              directory of the certificates
#   . scripts/pg-tls.sh        (after pg.sh's ensure_postgres) defines ensure_postgres_tls
#
# ensure_postgres_tls exports PBX_PORTAL_TEST_PG_TLS, a directory holding
#   ca.crt        the CA that signed the server's certificate, which names only the DNS
#                 name `localhost` (so connecting to 127.0.0.1 with verify-full must fail,
#                 and host=localhost hostaddr=127.0.0.1 must pass)
#   other-ca.crt  a CA that signed nothing the server has (the "wrong CA")
#   server.crt, server.key   what PostgreSQL serves
# Both CA keys are deleted as soon as the server's certificate is signed: nothing else can
# ever be signed by these CAs.
#
# The server is shared: every checkout's test run (and other programs) may use it at the
# same time, so the certificates are made once and kept while they are valid for another
# 7 days (90 days each), under a lock; a run that found them valid and in use changes
# nothing. ssl=on with our files is set with ALTER SYSTEM (postgresql.auto.conf) and a
# reload: connections in clear text keep working (pg_hba.conf is not touched, so `host`
# lines accept both), and existing sessions are not interrupted.

PG_TLS_DIR_DEFAULT=/var/lib/postgresql/pbx-portal-test-tls

pg_tls_valid() {
    local d=$1
    [ -s "$d/ca.crt" ] && [ -s "$d/other-ca.crt" ] && [ -s "$d/server.crt" ] && [ -s "$d/server.key" ] &&
        openssl x509 -in "$d/server.crt" -noout -checkend $((7 * 86400)) >/dev/null 2>&1 &&
        openssl verify -CAfile "$d/ca.crt" "$d/server.crt" >/dev/null 2>&1
}

# A self-signed CA certificate $1.crt with its key $1.key, named $2.
pg_tls_ca() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$1.key" -out "$1.crt" -days 90 -subj "/CN=$2" \
        -addext basicConstraints=critical,CA:TRUE \
        -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
}

pg_tls_make() {
    local dir=$1 tmp
    tmp=$(mktemp -d "$dir.new.XXXXXX")
    local stamp
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    pg_tls_ca "$tmp/ca" "pbx-portal test CA $stamp"
    pg_tls_ca "$tmp/other-ca" "pbx-portal other test CA $stamp"
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$tmp/server.key" -out "$tmp/server.csr" -subj "/CN=localhost" 2>/dev/null
    printf '%s\n' 'subjectAltName=DNS:localhost' 'basicConstraints=critical,CA:FALSE' \
        'keyUsage=critical,digitalSignature' 'extendedKeyUsage=serverAuth' >"$tmp/server.ext"
    openssl x509 -req -in "$tmp/server.csr" -CA "$tmp/ca.crt" -CAkey "$tmp/ca.key" \
        -set_serial "0x$(openssl rand -hex 16)" -days 90 -extfile "$tmp/server.ext" \
        -out "$tmp/server.crt" 2>/dev/null
    rm -f "$tmp/ca.key" "$tmp/other-ca.key" "$tmp/server.csr" "$tmp/server.ext"
    chown -R postgres:postgres "$tmp"
    chmod 0755 "$tmp"
    chmod 0644 "$tmp"/*.crt
    chmod 0600 "$tmp/server.key"
    pg_tls_valid "$tmp" || { echo "pg-tls.sh: could not make the certificates" >&2; return 1; }
    rm -rf "$dir.old"
    [ ! -e "$dir" ] || mv "$dir" "$dir.old"
    mv "$tmp" "$dir"
    rm -rf "$dir.old"
}

# Whether the server sees this session as TLS, verified as verify-full against our CA.
pg_tls_works() {
    local out
    out=$(psql "$PG_ADMIN_URL?host=localhost&hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert=$1/ca.crt" \
        -XAtqc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' 2>/dev/null) || return 1
    [ "$out" = t ]
}

ensure_postgres_tls() {
    local dir=${PBX_PORTAL_TEST_PG_TLS:-$PG_TLS_DIR_DEFAULT}
    if [ -n "${PBX_PORTAL_TEST_PG_TLS:-}" ] && [ "$dir" != "$PG_TLS_DIR_DEFAULT" ]; then
        # Certificates of a server this script does not manage: only check them.
        pg_tls_works "$dir" || { echo "pg-tls.sh: PBX_PORTAL_TEST_PG_TLS=$dir: no verify-full connection to the test PostgreSQL with $dir/ca.crt" >&2; return 1; }
        return 0
    fi
    local datadir
    datadir=$(psql "$PG_ADMIN_URL" -XAtqc 'SHOW data_directory' 2>/dev/null) || datadir=
    if [ -z "$datadir" ] || [ ! -d "$datadir" ] || ! id postgres >/dev/null 2>&1; then
        echo "pg-tls.sh: the test PostgreSQL is not one of this machine's clusters (data directory '$datadir' not here):" \
            "cannot switch its TLS on; set PBX_PORTAL_TEST_PG_TLS to a directory with ca.crt and other-ca.crt" \
            "for a server whose certificate names localhost" >&2
        return 1
    fi
    command -v openssl >/dev/null || {
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq openssl >/dev/null
    }
    mkdir -p "$(dirname "$dir")"
    (
        flock 9
        changed=0
        if ! pg_tls_valid "$dir"; then
            pg_tls_make "$dir" || exit 1
            changed=1
        fi
        settings=$(psql "$PG_ADMIN_URL" -XAtqc "SELECT current_setting('ssl') || ' ' || current_setting('ssl_cert_file') || ' ' || current_setting('ssl_key_file')")
        if [ "$changed" = 1 ] || [ "$settings" != "on $dir/server.crt $dir/server.key" ] || ! pg_tls_works "$dir"; then
            psql "$PG_ADMIN_URL" -Xq -v ON_ERROR_STOP=1 \
                -c "ALTER SYSTEM SET ssl_cert_file = '$dir/server.crt'" \
                -c "ALTER SYSTEM SET ssl_key_file = '$dir/server.key'" \
                -c "ALTER SYSTEM SET ssl = on" \
                -c "SELECT pg_reload_conf()" >/dev/null || exit 1
            # The postmaster reloads asynchronously.
            for _ in $(seq 1 40); do
                pg_tls_works "$dir" && exit 0
                sleep 0.25
            done
            echo "pg-tls.sh: PostgreSQL did not take the certificates (see its log)" >&2
            exit 1
        fi
    ) 9>"$dir.lock" || return 1
    export PBX_PORTAL_TEST_PG_TLS=$dir
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    set -euo pipefail
    cd "$(dirname "$0")/.."
    . scripts/pg.sh
    ensure_postgres
    ensure_postgres_tls
    echo "$PBX_PORTAL_TEST_PG_TLS"
fi
