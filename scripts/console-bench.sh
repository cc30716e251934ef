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

. scripts/throwaway-server.sh
# Room for the 10,000 users.
start_throwaway_server console_bench "$binary" PORTAL_EXTENSION_MIN=10000 PORTAL_EXTENSION_MAX=29999

say "server $base ($binary)"
PORTAL_URL=$base ADMIN_TOKEN=$token node "$repo/tests/console/bench.mjs"
