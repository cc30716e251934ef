#!/usr/bin/env bash
# The whole check, as CI runs it: PostgreSQL (found or installed, TLS switched on with a
# CA made on this machine: scripts/pg-tls.sh), the HTTPS test CA (scripts/test-ca.sh),
# formatting, lints,
# every test against a throwaway database per test, schemathesis against a real server
# (pinned, time-bounded: scripts/schemathesis.sh), the systemd unit, the Debian package
# (scripts/check-deb.sh: needs root, as CI has). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh
. scripts/pg-tls.sh

ensure_postgres
export TEST_DATABASE_URL=$PG_ADMIN_URL
ensure_postgres_tls    # exports PBX_PORTAL_TEST_PG_TLS for tests/it/tls.rs
# The CA and server certificates of the HTTPS tests (tests/it/https.rs) and the browser
# tests: kept in the target directory, made again only when near their end.
PBX_PORTAL_TEST_HTTPS_DIR=$(scripts/test-ca.sh "${PBX_PORTAL_TEST_HTTPS_DIR:-${CARGO_TARGET_DIR:-target}/test-https}")
export PBX_PORTAL_TEST_HTTPS_DIR

cleanup() {
    # Databases of tests that were killed before they could drop their own: named
    # pbx_portal_test_<pid>_…, dropped only when that process is gone, so that another
    # checkout's tests running on the same server keep theirs.
    local db pid
    for db in $(psql "$PG_ADMIN_URL" -XAtqc "SELECT datname FROM pg_database WHERE datname ~ '^pbx_portal_test_[0-9]+_'" 2>/dev/null); do
        pid=${db#pbx_portal_test_}
        pid=${pid%%_*}
        kill -0 "$pid" 2>/dev/null || psql "$PG_ADMIN_URL" -Xqc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
    done
}
trap cleanup EXIT

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== browser test dependencies"
scripts/browser-deps.sh    # Debian's chromium, the pinned playwright-core: tests/it/console.rs
echo "== cargo test"
cargo test
echo "== schemathesis"
scripts/schemathesis.sh "${CARGO_TARGET_DIR:-target}/debug/pbx-portal"
echo "== systemd unit"
scripts/check-systemd.sh "${CARGO_TARGET_DIR:-target}/debug/pbx-portal"
echo "== Debian package"
scripts/check-deb.sh
