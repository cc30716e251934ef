#!/usr/bin/env bash
# Static checks of the systemd unit; needs no running systemd (CI runs in a
# container).
#
#   scripts/check-systemd.sh [BINARY [UNIT]]
#
# BINARY defaults to target/debug/pbx-portal, UNIT to systemd/pbx-portal.service
# (scripts/check-deb.sh passes the unit and binary taken out of the .deb).
#
# 1. systemd-analyze verify on a copy of the unit whose ExecStart= points at
#    BINARY instead of /usr/bin/pbx-portal, where the package installs it
#    (verify fails on a missing or non-executable ExecStart= binary).
#    verify exits 0 even for unknown keys or unparsable values (it logs
#    "Unknown key ..., ignoring"), so any message about the unit fails the check.
#    It does not resolve User=/Group= and does not look at EnvironmentFile= or
#    ReadWritePaths=; those are runtime matters (the unit fails to start with
#    217/USER or 226/NAMESPACE), checked by `pbx-portal check` and the install
#    steps, not here.
# 2. systemd-analyze security --offline=yes on that copy: prints the overall
#    exposure and fails unless the rating is OK or better. Ratings of systemd
#    (exposure 0.0-10.0): PERFECT 0.0, SAFE 0.1-0.9, OK 1.0-4.9, MEDIUM 5.0-7.4,
#    EXPOSED 7.5-8.9, UNSAFE 9.0-9.9, DANGEROUS 10.0.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary=${1:-target/debug/pbx-portal}
unit_src=${2:-$repo_root/systemd/pbx-portal.service}
unit_name=pbx-portal.service
max_exposure=4.9 # the top of "OK"

die() { echo "check-systemd: $*" >&2; exit 1; }

[[ -f "$unit_src" ]] || die "unit not found: $unit_src"

# Relative BINARY paths are relative to the repository root (like cargo's target/).
[[ "$binary" == /* ]] || binary="$repo_root/$binary"
[[ -f "$binary" && -x "$binary" ]] || die "binary not found or not executable: $binary (build it first, or pass a path)"
binary=$(realpath "$binary")

# systemd-analyze ships only in Debian's "systemd" package. Installing it without
# recommends in a container is harmless: nothing is started (no systemd as PID 1).
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check-systemd: systemd-analyze missing, installing the systemd package"
    sudo=
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends systemd >/dev/null
    command -v systemd-analyze >/dev/null 2>&1 || die "systemd-analyze still missing after installing systemd"
fi

version=$(systemd-analyze --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
echo "check-systemd: $(systemd-analyze --version | head -n 1)"
[[ -n "$version" ]] || die "cannot read the systemd version"
(( version >= 252 )) || die "systemd $version is too old: security --offline needs systemd >= 252"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unit="$work/$unit_name"
# Only the ExecStart= binary changes; every other line is verified as shipped.
grep -q '^ExecStart=/usr/bin/pbx-portal serve$' "$unit_src" \
    || die "unexpected ExecStart= line in $unit_src"
sed "s|^ExecStart=/usr/bin/pbx-portal serve\$|ExecStart=$binary serve|" "$unit_src" >"$unit"

export SYSTEMD_PAGER='' SYSTEMD_COLORS=0 SYSTEMD_LOG_COLOR=0 LC_ALL=C.UTF-8

# --- 1. verify ---------------------------------------------------------------
echo "check-systemd: systemd-analyze verify $unit_name (ExecStart=$binary serve)"
set +e
verify_out=$(systemd-analyze verify --man=no "$unit" 2>&1)
verify_rc=$?
set -e
[[ -z "$verify_out" ]] || printf '%s\n' "$verify_out" | sed 's/^/  /'
# Messages about other units (pulled in through Wants=/After=) are the host's
# business and only shown; anything about ours fails.
if (( verify_rc != 0 )) || grep -q "$unit_name" <<<"$verify_out"; then
    die "systemd-analyze verify reported problems with $unit_name (exit $verify_rc)"
fi
echo "check-systemd: verify ok"

# --- 2. security -------------------------------------------------------------
echo "check-systemd: systemd-analyze security --offline=yes $unit_name"
set +e
security_out=$(systemd-analyze security --offline=yes --no-pager "$unit" 2>&1)
security_rc=$?
set -e
if (( security_rc != 0 )); then
    printf '%s\n' "$security_out" | sed 's/^/  /'
    die "systemd-analyze security failed (exit $security_rc)"
fi
# Failed items only (lines starting with the cross mark), for the log.
grep '^✗' <<<"$security_out" | sed 's/^/  /' || true
overall=$(grep 'Overall exposure level for' <<<"$security_out" | tail -n 1)
[[ -n "$overall" ]] || { printf '%s\n' "$security_out"; die "no overall exposure line in the output"; }
echo "$overall"
if [[ ! "$overall" =~ Overall\ exposure\ level\ for\ [^:]+:\ ([0-9]+\.[0-9])\ ([A-Z]+) ]]; then
    die "cannot parse: $overall"
fi
score=${BASH_REMATCH[1]} rating=${BASH_REMATCH[2]}
case "$rating" in
    PERFECT | SAFE | OK) ;;
    *) die "exposure $score $rating is worse than OK" ;;
esac
# Belt and braces: the number must agree with the rating.
awk -v s="$score" -v m="$max_exposure" 'BEGIN { exit !(s <= m) }' \
    || die "exposure $score is above $max_exposure"
echo "check-systemd: security ok (exposure $score $rating)"
