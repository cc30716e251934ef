# Sourced by dev.sh and test.sh: makes sure a PostgreSQL server answers and exports
# PG_ADMIN_URL, a URL of a superuser connection to its `postgres` database.
# Order: $TEST_DATABASE_URL if set; a server on 127.0.0.1:5432 with trust auth; else
# install (Debian's package) and start one, giving `postgres` a password for TCP logins.

pg_try() { psql "$1" -XAtqc 'SELECT 1' >/dev/null 2>&1; }

ensure_postgres() {
    if [ -n "${TEST_DATABASE_URL:-}" ] && pg_try "$TEST_DATABASE_URL"; then
        PG_ADMIN_URL=$TEST_DATABASE_URL
        return
    fi
    for url in "postgres://postgres@127.0.0.1:5432/postgres" "postgres://postgres:postgres@127.0.0.1:5432/postgres"; do
        if command -v psql >/dev/null && pg_try "$url"; then
            PG_ADMIN_URL=$url
            return
        fi
    done
    echo "pg.sh: no PostgreSQL reachable on 127.0.0.1:5432; installing and starting one" >&2
    if ! command -v pg_ctlcluster >/dev/null; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
    fi
    local version
    version=$(ls /etc/postgresql | sort -V | tail -n1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start 2>/dev/null || true
    for _ in $(seq 1 30); do
        pg_isready -q -h 127.0.0.1 -p 5432 && break
        sleep 1
    done
    su postgres -c "psql -XAtqc \"ALTER USER postgres PASSWORD 'postgres'\"" >/dev/null
    PG_ADMIN_URL="postgres://postgres:postgres@127.0.0.1:5432/postgres"
    pg_try "$PG_ADMIN_URL" || { echo "pg.sh: PostgreSQL still not reachable" >&2; exit 1; }
}
