#!/usr/bin/env bash
# The console's performance (issue 20, Performance), in headless chromium on this machine:
# the users page with 10,000 users — its first page rendered after a navigation, and the
# filter as you type — and the whole console's compressed size, each printed next to its
# limit (300 ms, 50 ms, 150 KB). Exits 1 when one is over its limit.
#
#   scripts/console-bench.sh [BINARY]     BINARY defaults to the release build, built first
#
# The release binary serves a throwaway database on the local PostgreSQL (scripts/pg.sh)
# with PORTAL_RELOAD=none on a free loopback port; tests/console/bench.mjs seeds the
# 10,000 users through the import API and measures (median of 20 each). Everything is
# removed on any exit. The browser's dependencies: scripts/browser-deps.sh (run here).
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
say() { echo "console-bench.sh: $*"; }
die() { say "$*" >&2; exit 1; }

if [[ $# -ge 1 ]]; then
    binary=$1
else
    cargo build --release --quiet
    binary=${CARGO_TARGET_DIR:-target}/release/pbx-portal
fi
[[ -x "$binary" ]] || die "no server binary at $binary"
binary=$(realpath "$binary")
scripts/browser-deps.sh >/dev/null

. scripts/pg.sh
ensure_postgres
db="pbx_portal_console_bench_$$"
for stale in $(psql "$PG_ADMIN_URL" -XAtqc "SELECT datname FROM pg_database WHERE datname ~ '^pbx_portal_console_bench_[0-9]+$'"); do
    kill -0 "${stale##*_}" 2>/dev/null || psql "$PG_ADMIN_URL" -Xqc "DROP DATABASE IF EXISTS $stale WITH (FORCE)" >/dev/null 2>&1 || true
done
work=$(mktemp -d)
server_pid=
cleanup() {
    local rc=$?
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    psql "$PG_ADMIN_URL" -Xqc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

psql "$PG_ADMIN_URL" -Xqc "CREATE DATABASE $db" >/dev/null
etc=$work/etc
mkdir -p "$etc/pjsip.d/synergycall" "$etc/extensions.d/synergycall"
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
port=$(free_port)
agi_port=$(free_port)
token=$(head -c 24 /dev/urandom | base64 | tr '+/' '-_')
base="http://127.0.0.1:$port"
(
    export DATABASE_URL="${PG_ADMIN_URL%/*}/$db?sslmode=disable"
    export PORTAL_API_TOKEN="$token"
    export PORTAL_LISTEN="127.0.0.1:$port"
    export PORTAL_AGI_LISTEN="127.0.0.1:$agi_port"
    export PORTAL_EXTENSION_MIN=10000 PORTAL_EXTENSION_MAX=29999   # room for 10,000 users
    export PORTAL_RELOAD=none
    export PORTAL_PJSIP_DIR="$etc/pjsip.d/synergycall"
    export PORTAL_DIALPLAN_DIR="$etc/extensions.d/synergycall"
    export PORTAL_ASTERISK_CONFIG_DIR="$etc"
    export RUST_LOG=info
    cd "$work"
    exec "$binary" serve
) >"$work/server.log" 2>&1 &
server_pid=$!
healthy() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/healthz" 2>/dev/null; }
for _ in $(seq 1 100); do
    healthy && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "the server did not start"; }
    sleep 0.1
done
healthy || { cat "$work/server.log" >&2; die "the server does not answer on $base"; }

say "server $base ($binary)"
PORTAL_URL=$base ADMIN_TOKEN=$token node "$repo/tests/console/bench.mjs"
