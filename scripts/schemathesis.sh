#!/usr/bin/env bash
# Schemathesis against a real `pbx-portal serve`: property-based requests generated from
# the served OpenAPI document, to find what a hand-written test does not think of (a NUL in
# a query, a rule the document states but the server does not apply, or the reverse).
#
#   scripts/schemathesis.sh [BINARY]     BINARY defaults to $CARGO_TARGET_DIR/debug/pbx-portal
#
# - schemathesis is pinned ($VERSION) and installed from PyPI into .venv-schemathesis/
#   (git-ignored); python3 and python3-venv are installed with apt-get when a virtualenv
#   cannot be made without them.
# - The server gets a throwaway database on the local PostgreSQL (scripts/pg.sh), include
#   directories in a temporary folder, PORTAL_RELOAD=none and a free loopback port. All
#   of it is removed on any exit: server stopped, database dropped, folder deleted.
# - Every phase runs (examples, coverage, fuzzing, stateful), every check (--checks all),
#   in one time budget: --max-time $BUDGET s for schemathesis, $HARD_STOP s as a hard stop.
#   Any failure or server error fails this script. scripts/schemathesis_hooks.py drops two
#   findings that are the specified Idempotency-Key behaviour (it says why), nothing else.
# - SCHEMATHESIS_SEED=<n> repeats a run; the seed is printed either way.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

VERSION=4.32.5
BUDGET=60     # schemathesis --max-time: the phases share it
HARD_STOP=85  # the whole schemathesis run, start-up of the tool included
venv=$repo/.venv-schemathesis
binary=${1:-${CARGO_TARGET_DIR:-target}/debug/pbx-portal}

say() { echo "schemathesis.sh: $*"; }
die() { say "$*" >&2; exit 1; }

[[ -x "$binary" ]] || die "no server binary at $binary (cargo build first, or pass a path)"
binary=$(realpath "$binary")

# --- the pinned tool -------------------------------------------------------------------
apt_install() {
    local sudo=
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
# Debian's python3 has `venv` but cannot make one without python3-venv (ensurepip is
# there, its wheels are not): try, and install the package when the try fails.
make_venv() { rm -rf "$venv" && python3 -m venv "$venv" >/dev/null 2>&1; }
if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != *"version $VERSION" ]]; then
    command -v python3 >/dev/null || apt_install python3
    if ! make_venv; then
        say "python3 cannot create a virtualenv: installing python3-venv"
        apt_install python3-venv
        make_venv || die "python3 -m venv still fails"
    fi
    say "installing schemathesis==$VERSION into ${venv#"$repo"/}"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$VERSION"
fi
"$venv/bin/schemathesis" --version

# --- database, folders, server ---------------------------------------------------------
. scripts/pg.sh
ensure_postgres
# Not pbx_portal_test_*, the cargo tests' names that test.sh's clean-up reads. Databases
# of runs that were killed (their process is gone) are dropped here.
db="pbx_portal_schemathesis_$$"
for stale in $(psql "$PG_ADMIN_URL" -XAtqc "SELECT datname FROM pg_database WHERE datname ~ '^pbx_portal_schemathesis_[0-9]+$'"); do
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
    export DATABASE_URL="${PG_ADMIN_URL%/*}/$db"
    export PORTAL_API_TOKEN="$token"
    export PORTAL_LISTEN="127.0.0.1:$port"
    export PORTAL_AGI_LISTEN="127.0.0.1:$agi_port"
    export PORTAL_RELOAD=none
    export PORTAL_PJSIP_DIR="$etc/pjsip.d/synergycall"
    export PORTAL_DIALPLAN_DIR="$etc/extensions.d/synergycall"
    export PORTAL_ASTERISK_CONFIG_DIR="$etc"
    export RUST_LOG=info
    cd "$work" # no .env of the repository is read
    exec "$binary" serve
) >"$work/server.log" 2>&1 &
server_pid=$!
# python3, not curl: a fresh Debian has the one this script installed, not necessarily curl.
healthy() { python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$base/healthz" 2>/dev/null; }
for _ in $(seq 1 100); do
    healthy && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "the server did not start"; }
    sleep 0.1
done
healthy || { cat "$work/server.log" >&2; die "the server does not answer on $base"; }

# --- the run ---------------------------------------------------------------------------
seed=${SCHEMATHESIS_SEED:-$(( (RANDOM << 15) | RANDOM ))}
say "seed $seed, budget ${BUDGET}s, server $base"
started=$SECONDS
set +e
# From the temporary folder: the tool's own caches (.schemathesis/) go away with it.
cd "$work"
SCHEMATHESIS_HOOKS="$repo/scripts/schemathesis_hooks.py" \
    timeout --kill-after=5 "$HARD_STOP" "$venv/bin/schemathesis" run "$base/openapi.json" \
    --url "$base" \
    --header "Authorization: Bearer $token" \
    --phases examples,coverage,fuzzing,stateful \
    --checks all \
    --max-time "$BUDGET" \
    --workers 2 \
    --seed "$seed" \
    --generation-database none \
    --request-timeout 10 \
    --no-color
rc=$?
set -e
say "schemathesis exited $rc after $((SECONDS - started))s"
cd "$repo"
if grep -q "panicked" "$work/server.log"; then
    grep -B2 -A10 "panicked" "$work/server.log" >&2
    die "the server panicked"
fi
if ((rc == 124 || rc == 137)); then
    die "schemathesis did not finish within ${HARD_STOP}s"
fi
if ((rc != 0)); then
    say "the server's log (last 40 lines):"
    tail -n 40 "$work/server.log" >&2
fi
((rc == 0)) || die "schemathesis found failures (seed $seed; rerun with SCHEMATHESIS_SEED=$seed)"
