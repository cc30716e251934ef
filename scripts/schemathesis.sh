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
. scripts/throwaway-server.sh
start_throwaway_server schemathesis "$binary"

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
