# shellcheck shell=bash
# Sourced by the scripts that need a real `pbx-portal serve` for a while (schemathesis.sh,
# console-bench.sh): a throwaway database on the local PostgreSQL (scripts/pg.sh), include
# directories in a temporary folder, PORTAL_RELOAD=none, a free loopback port and a random
# bootstrap token. All of it is removed on any exit: server stopped, database dropped,
# folder deleted. The caller defines `die`.
#
#   . scripts/throwaway-server.sh
#   start_throwaway_server NAME BINARY [VAR=VALUE ...]   # sets base, token, work
#
# NAME names the database (pbx_portal_NAME_<pid>; not pbx_portal_test_*, the cargo tests'
# names that test.sh's clean-up reads); databases of runs that were killed (their process
# is gone) are dropped first. VAR=VALUE pairs are exported to the server after the
# defaults.

_throwaway_cleanup() {
    local rc=$?
    if [[ -n "${server_pid:-}" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    psql "$PG_ADMIN_URL" -Xqc "DROP DATABASE IF EXISTS $throwaway_db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
    exit "$rc"
}

# python3, not curl: a fresh Debian has python3, not necessarily curl.
_throwaway_healthy() {
    python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/healthz" 2>/dev/null
}

_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start_throwaway_server() {
    local name=$1 binary=$2 stale
    shift 2
    . scripts/pg.sh
    ensure_postgres
    throwaway_db="pbx_portal_${name}_$$"
    for stale in $(psql "$PG_ADMIN_URL" -XAtqc "SELECT datname FROM pg_database WHERE datname ~ '^pbx_portal_${name}_[0-9]+$'"); do
        kill -0 "${stale##*_}" 2>/dev/null || psql "$PG_ADMIN_URL" -Xqc "DROP DATABASE IF EXISTS $stale WITH (FORCE)" >/dev/null 2>&1 || true
    done
    work=$(mktemp -d)
    server_pid=
    trap _throwaway_cleanup EXIT
    trap 'exit 130' INT TERM

    psql "$PG_ADMIN_URL" -Xqc "CREATE DATABASE $throwaway_db" >/dev/null
    local etc=$work/etc port agi_port
    mkdir -p "$etc/pjsip.d/synergycall" "$etc/extensions.d/synergycall"
    port=$(_free_port)
    agi_port=$(_free_port)
    token=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
    base="http://127.0.0.1:$port"
    (
        export DATABASE_URL="${PG_ADMIN_URL%/*}/$throwaway_db?sslmode=disable"
        export PORTAL_API_TOKEN="$token"
        export PORTAL_LISTEN="127.0.0.1:$port"
        export PORTAL_AGI_LISTEN="127.0.0.1:$agi_port"
        export PORTAL_RELOAD=none
        export PORTAL_PJSIP_DIR="$etc/pjsip.d/synergycall"
        export PORTAL_DIALPLAN_DIR="$etc/extensions.d/synergycall"
        export PORTAL_ASTERISK_CONFIG_DIR="$etc"
        export RUST_LOG=info
        local kv
        for kv in "$@"; do export "${kv?}"; done
        cd "$work" || exit # no .env of the repository is read
        exec "$binary" serve
    ) >"$work/server.log" 2>&1 &
    server_pid=$!
    for _ in $(seq 1 100); do
        _throwaway_healthy && break
        kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "the server did not start"; }
        sleep 0.1
    done
    _throwaway_healthy || { cat "$work/server.log" >&2; die "the server does not answer on $base"; }
}
