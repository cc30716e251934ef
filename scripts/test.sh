#!/usr/bin/env bash
# The whole check, as CI runs it: PostgreSQL (found or installed), formatting, lints,
# every test against a throwaway database per test, schemathesis against a real server
# (pinned, time-bounded: scripts/schemathesis.sh), the systemd unit, the Debian package
# (scripts/check-deb.sh: needs root, as CI has). Run from anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh

ensure_postgres
export TEST_DATABASE_URL=$PG_ADMIN_URL

cleanup() {
    # Databases of tests that were killed before they could drop their own.
    psql "$PG_ADMIN_URL" -XAtqc "SELECT 'DROP DATABASE IF EXISTS \"' || datname || '\" WITH (FORCE);' FROM pg_database WHERE datname LIKE 'pbx_portal_test_%'" 2>/dev/null \
        | psql "$PG_ADMIN_URL" -Xq >/dev/null 2>&1 || true
}
trap cleanup EXIT

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings
echo "== cargo test"
cargo test
echo "== schemathesis"
scripts/schemathesis.sh "${CARGO_TARGET_DIR:-target}/debug/pbx-portal"
echo "== systemd unit"
scripts/check-systemd.sh "${CARGO_TARGET_DIR:-target}/debug/pbx-portal"
echo "== Debian package"
scripts/check-deb.sh
