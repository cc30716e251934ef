#!/usr/bin/env bash
# Builds the Debian package and proves it installs, upgrades and purges as an admin
# would see it, in a throwaway Debian root on this machine. Part of scripts/test.sh.
#
#   scripts/check-deb.sh
#
# Needs root (chroot, file owners, systemd-nspawn) and a Debian/Ubuntu host with
# apt; installs what it lacks with apt-get (lintian, dpkg-dev, debootstrap, the
# shell linter, binutils, postgresql-client, systemd-container, curl) and cargo-deb
# (pinned below) with cargo. Test traffic goes to 127.0.0.1 only (PostgreSQL, the
# service). Anything that cannot run here fails the check with the reason: no step
# is skipped.
#
#  1. shellcheck on the project's shell scripts and the maintainer scripts.
#  2. scripts/build-deb.sh (release build, the generated man page, cargo deb):
#     the man page names every command; the .deb's name, files, modes, conffiles and
#     relations; the shipped unit, env file and snippets are the repository's.
#     (That the env file is the one src/config/variables.rs generates, naming
#     every variable the configuration reads, is a test of `cargo test`.)
#  3. lintian: no error, and no warning but the ones CONTRIBUTING.md explains.
#  4. scripts/check-systemd.sh on the unit and binary taken out of the .deb.
#  5. A Debian root of this host's release (debootstrap --variant=minbase from
#     apt's own mirror, cached as a tarball under target/deb-test/) with an
#     asterisk user, /etc/asterisk files and include dirs planted in it.
#  6. apt-get install of the .deb in that root: the pbx-portal user and group,
#     membership of asterisk, owners and modes, the unit enabled, not started;
#     `pbx-portal --version`; `pbx-portal migrate` and `check` as pbx-portal
#     against a throwaway database on the local PostgreSQL (check's lines; AMI
#     unreachable on a port this script holds closed, so an Asterisk or anything
#     else on this host's 5038, 4573 or 8080 changes nothing).
#  7. Upgrade to the same package rebuilt with a higher version: the edited env
#     file is kept byte for byte, owners and modes too.
#  8. Purge: user, group, /etc/pbx-portal and the unit gone; /etc/asterisk
#     (content, owners, modes) exactly as planted; the database still there.
#  9. The same under systemd: a fresh root booted with systemd-nspawn (host
#     network, nothing else shared). Installed: enabled, not started. Configured
#     and started: the service runs as pbx-portal with group asterisk inside the
#     unit's sandbox, answers /healthz, and an apply (PORTAL_RELOAD=none) writes
#     the include files as pbx-portal:asterisk 0640. Upgrade while running:
#     restarted; reinstall while stopped: stays stopped; purge while running:
#     stopped, user gone.
# Single quotes around dpkg-query formats (${Status}), awk programs and backticks
# are literal on purpose.
# shellcheck disable=SC2016
set -euo pipefail

# cargo-deb version the package is built with: installed when missing or different.
CARGO_DEB_VERSION=3.8.0
# lintian warnings that stay, each explained in CONTRIBUTING.md ("lintian"). Any
# other warning, or any error, fails the check.
ALLOWED_LINTIAN_WARNINGS="initial-upload-closes-no-bugs non-standard-file-perm"
# Bump when the root's content changes (debootstrap options, packages).
CHROOT_FORMAT=2

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
target=${CARGO_TARGET_DIR:-target}
[[ "$target" == /* ]] || target="$repo_root/$target"
work="$target/deb-test"
root="$work/root"
start_time=$SECONDS

say() { echo "check-deb: $*"; }
die() { echo "check-deb: FAIL: $*" >&2; exit 1; }
step() { echo "== check-deb [$((SECONDS - start_time))s] $*"; }

[[ $(id -u) -eq 0 ]] || die "must run as root (chroot, file owners); CI runs as root"
command -v apt-get >/dev/null || die "no apt-get: this check needs a Debian or Ubuntu host"

db_name=
nspawn_pid=
stop_container() {
    [[ -n "$nspawn_pid" ]] || return 0
    # SIGTERM makes systemd-nspawn ask the container's systemd to power off.
    kill -TERM "$nspawn_pid" 2>/dev/null || true
    local _
    for _ in $(seq 1 50); do
        kill -0 "$nspawn_pid" 2>/dev/null || break
        sleep 0.2
    done
    if kill -0 "$nspawn_pid" 2>/dev/null; then
        echo "check-deb: the container did not power off in 10 s: killing it" >&2
        kill -KILL "$nspawn_pid" 2>/dev/null || true
    fi
    wait "$nspawn_pid" 2>/dev/null || true
    nspawn_pid=
}
# Loopback ports for the installed service, never a well-known one: whatever runs on
# this host (an Asterisk on 5038, a web server on 8080) must not change the outcome.
# `free_ports N`: N ports that were free a moment ago (the kernel's choice).
free_ports() {
    python3 -c 'import socket, sys
s = [socket.socket() for _ in range(int(sys.argv[1]))]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])' "$1"
}
# `hold_closed_port`: sets closed_port to a loopback port that a child of this script
# holds bound without listening, until release_closed_port: a connection to it is
# refused, and nothing else can take it meanwhile.
closed_port=
closed_port_pid=
hold_closed_port() {
    local fifo="$work/closed-port"
    rm -f "$fifo"
    mkfifo "$fifo"
    python3 -c 'import signal, socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
signal.pause()' >"$fifo" &
    closed_port_pid=$!
    read -r closed_port <"$fifo" || die "could not reserve a closed port"
    rm -f "$fifo"
    [[ "$closed_port" =~ ^[0-9]+$ ]] || die "could not reserve a closed port: $closed_port"
}
release_closed_port() {
    [[ -n "$closed_port_pid" ]] || return 0
    kill "$closed_port_pid" 2>/dev/null || true
    wait "$closed_port_pid" 2>/dev/null || true
    closed_port_pid=
}
bootstrap_pid=
lintian_dir=
cleanup() {
    stop_container
    release_closed_port
    [[ -z "$lintian_dir" ]] || rm -rf "$lintian_dir"
    # A debootstrap still running (an earlier step failed): let it finish rather
    # than leave it writing into target/.
    [[ -z "$bootstrap_pid" ]] || wait "$bootstrap_pid" 2>/dev/null || true
    if [[ -n "$db_name" && -n "${PG_ADMIN_URL:-}" ]]; then
        psql "$PG_ADMIN_URL" -XAtqc "DROP DATABASE IF EXISTS \"$db_name\" WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    # Nothing is mounted inside the root: the check never mounts anything there.
    [[ -d "$root" ]] && rm -rf --one-file-system "$root"
    return 0
}
trap cleanup EXIT

# --- tools --------------------------------------------------------------------
step "tools"
missing=()
command -v lintian >/dev/null || missing+=(lintian)
command -v dpkg-shlibdeps >/dev/null || missing+=(dpkg-dev)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v objcopy >/dev/null || missing+=(binutils)
command -v readelf >/dev/null || missing+=(binutils)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v systemd-nspawn >/dev/null || missing+=(systemd-container)
command -v curl >/dev/null || missing+=(curl)
if ((${#missing[@]})); then
    say "installing with apt-get: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi
if [[ "$(cargo deb --version 2>/dev/null || true)" != "cargo-deb $CARGO_DEB_VERSION" ]]; then
    say "installing cargo-deb $CARGO_DEB_VERSION"
    cargo install cargo-deb --locked --version "$CARGO_DEB_VERSION" >/dev/null 2>&1 \
        || die "cargo install cargo-deb --locked --version $CARGO_DEB_VERSION failed"
fi
say "$(cargo deb --version), $(lintian --version), shellcheck $(shellcheck --version | sed -n 's/^version: //p')"

# --- 1. shellcheck ------------------------------------------------------------
step "1. shellcheck"
shellcheck -x scripts/check-deb.sh scripts/check-systemd.sh scripts/test.sh scripts/build-deb.sh \
    scripts/schemathesis.sh scripts/console-bench.sh scripts/throwaway-server.sh \
    scripts/browser-deps.sh scripts/test-ca.sh \
    debian/postinst debian/prerm debian/postrm || die "shellcheck found problems"
say "shellcheck ok"

# The Debian root's cache (step 5): this host's release and architecture.
arch=$(dpkg --print-architecture)
# shellcheck disable=SC1091 # /etc/os-release
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
[[ -n "$suite" ]] || die "no VERSION_CODENAME in /etc/os-release"
# The mirror apt already uses for this release (one-line and deb822 sources).
apt_mirror() {
    {
        grep -hsE '^[[:space:]]*deb[[:space:]]' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
            | grep -E "[[:space:]]${suite}[[:space:]]" | awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; break } }'
        for f in /etc/apt/sources.list.d/*.sources; do
            [[ -f "$f" ]] || continue
            # One paragraph per source: its URIs when its Suites name the release.
            awk -v suite="$suite" 'BEGIN { RS = ""; FS = "\n" }
                { uris = ""; ok = 0
                  for (i = 1; i <= NF; i++) {
                      if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
                      if ($i ~ /^Suites:/ && (" " $i " ") ~ (" " suite " ")) ok = 1
                  }
                  if (ok && uris != "") { split(uris, u, /[ \t]+/); print u[1] } }' "$f"
        done
    } | grep -E '^https?://' | head -n 1
}
cache="$work/chroot-$suite-$arch-v$CHROOT_FORMAT.tar.gz"
# Made once, in the background while cargo builds (network and disk against CPU);
# step 5 waits for it.
bootstrap_pid=
if [[ ! -f "$cache" ]]; then
    mirror=$(apt_mirror)
    [[ -n "$mirror" ]] || die "no http(s) mirror for $suite in apt's sources: cannot debootstrap"
    say "debootstrap $suite ($arch) from $mirror into a cache (once, in the background): $cache"
    mkdir -p "$work"
    rm -rf --one-file-system "$work/bootstrap"
    (
        debootstrap --variant=minbase --include=adduser,systemd,systemd-sysv --arch="$arch" \
            "$suite" "$work/bootstrap" "$mirror"
        rm -rf "$work/bootstrap/var/cache/apt/archives/"*.deb "$work/bootstrap/var/lib/apt/lists/"*
        tar -C "$work/bootstrap" -czf "$cache.tmp" .
        mv "$cache.tmp" "$cache"
        rm -rf --one-file-system "$work/bootstrap"
    ) >"$work/debootstrap.log" 2>&1 &
    bootstrap_pid=$!
fi

# --- 2. build -----------------------------------------------------------------
step "2. cargo deb"
env_src=systemd/pbx-portal.env.example
version=$(cargo pkgid | sed 's/.*[#@]//')
deb_version="$version-1"
changelog_version=$(dpkg-parsechangelog -l debian/changelog -S Version)
[[ "$changelog_version" == "$deb_version" ]] \
    || die "debian/changelog is at $changelog_version, the package at $deb_version: add a changelog entry"
deb_out=$(scripts/build-deb.sh 2>&1) || { printf '%s\n' "$deb_out"; die "scripts/build-deb.sh failed"; }
for c in serve migrate apply check import export "token create" "token list" "token revoke"; do
    grep -q "^\.SS \"pbx-portal $c\"" target/man/pbx-portal.1 || die "the man page lacks pbx-portal $c"
done
deb="$target/debian/pbx-portal_${deb_version}_${arch}.deb"
[[ -f "$deb" ]] || { printf '%s\n' "$deb_out"; die "cargo deb did not make $deb"; }
say "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB)"
rm -rf "$work/pkg" "$work/x"
mkdir -p "$work/pkg" "$work/x"
cp "$deb" "$target/debian/pbx-portal-dbgsym_${deb_version}_${arch}.ddeb" "$work/pkg/"
deb="$work/pkg/$(basename "$deb")"

# Files, modes and owners as packed (the postinst sets the group of the env file).
listing=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { print $1, $2, $6 }' | sort)
expected=$(sort <<'EOF'
-rw-r----- 0/0 ./etc/pbx-portal/pbx-portal.env
-rw-r--r-- 0/0 ./usr/lib/systemd/system/pbx-portal.service
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/README.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/api.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/asterisk.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/configuration.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/console.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/https.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/install.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/nodes.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/operations.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/postgres-tls.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/tenants.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/asterisk-snippets/README.md
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/asterisk-snippets/extensions.conf
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/asterisk-snippets/manager.conf
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/asterisk-snippets/pjsip.conf
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/changelog.Debian.gz
-rw-r--r-- 0/0 ./usr/share/doc/pbx-portal/copyright
-rw-r--r-- 0/0 ./usr/share/man/man1/pbx-portal.1.gz
-rwxr-xr-x 0/0 ./usr/bin/pbx-portal
EOF
)
[[ "$listing" == "$expected" ]] || die "package contents differ from the expected list:
$(diff <(echo "$expected") <(echo "$listing") | grep '^[<>]' | sed 's/^</  missing:/; s/^>/  unexpected:/')"
[[ "$(dpkg-deb -f "$deb" Package Version Architecture | tr '\n' ' ')" == "Package: pbx-portal Version: $deb_version Architecture: $arch " ]] \
    || die "unexpected control fields: $(dpkg-deb -f "$deb" Package Version Architecture | tr '\n' ' ')"
depends=$(dpkg-deb -f "$deb" Depends)
for dep in adduser init-system-helpers libc6; do
    [[ ", $depends," == *", $dep"[\ ,]* ]] || die "Depends lacks $dep: $depends"
done
dpkg-deb -e "$deb" "$work/x/DEBIAN"
[[ "$(cat "$work/x/DEBIAN/conffiles")" == "/etc/pbx-portal/pbx-portal.env" ]] \
    || die "conffiles: $(tr '\n' ' ' <"$work/x/DEBIAN/conffiles")"
for s in postinst prerm postrm; do
    [[ -x "$work/x/DEBIAN/$s" ]] || die "no executable $s in the package"
    grep -q 'Automatically added by cargo-deb' "$work/x/DEBIAN/$s" || die "$s lacks the systemd snippets"
done
dpkg-deb -x "$deb" "$work/x"
cmp -s "$work/x/usr/lib/systemd/system/pbx-portal.service" systemd/pbx-portal.service || die "packaged unit differs from systemd/pbx-portal.service"
cmp -s "$work/x/etc/pbx-portal/pbx-portal.env" "$env_src" || die "packaged env file differs from $env_src"
for f in asterisk-snippets/*; do
    cmp -s "$work/x/usr/share/doc/pbx-portal/$f" "$f" || die "packaged $f differs"
done
! readelf -S "$work/x/usr/bin/pbx-portal" | grep -qE '\.debug_(info|line)' || die "the packaged binary is not stripped"
say "package contents ok (Depends: $depends)"

# --- 3. lintian ---------------------------------------------------------------
step "3. lintian"
# As an unprivileged user, as lintian wants: a copy it can read wherever the
# clone is (its parents may be closed to others).
lintian_dir=$(mktemp -d)
cp "$deb" "$lintian_dir/"
chmod -R a+rX "$lintian_dir"
set +e
lintian_out=$(cd / && runuser -u nobody -- env HOME=/tmp lintian --display-info --fail-on none \
    "$lintian_dir/$(basename "$deb")" 2>&1)
lintian_rc=$?
set -e
[[ -z "$lintian_out" ]] || printf '%s\n' "$lintian_out" | sed 's/^/  /'
rm -rf "$lintian_dir"
((lintian_rc == 0)) || die "lintian itself failed (exit $lintian_rc)"
! grep -q '^E: ' <<<"$lintian_out" || die "lintian reports errors"
while read -r tag; do
    [[ -z "$tag" || " $ALLOWED_LINTIAN_WARNINGS " == *" $tag "* ]] \
        || die "lintian warning $tag is new: fix it, or explain it in CONTRIBUTING.md and ALLOWED_LINTIAN_WARNINGS"
done < <(grep '^W: ' <<<"$lintian_out" | awk '{ print $3 }' | sort -u)
say "lintian ok: no errors, warnings only the explained ones"

# --- 4. the packaged unit -----------------------------------------------------
step "4. systemd unit from the package"
for line in 'ExecStart=/usr/bin/pbx-portal serve' 'User=pbx-portal' 'Group=asterisk' \
    'EnvironmentFile=/etc/pbx-portal/pbx-portal.env' \
    'ReadWritePaths=/etc/asterisk/pjsip.d/synergycall /etc/asterisk/extensions.d/synergycall'; do
    grep -qxF "$line" "$work/x/usr/lib/systemd/system/pbx-portal.service" || die "the unit lacks: $line"
done
scripts/check-systemd.sh "$work/x/usr/bin/pbx-portal" "$work/x/usr/lib/systemd/system/pbx-portal.service"

# --- 5. a throwaway Debian root -------------------------------------------------
step "5. Debian root"
if [[ -n "$bootstrap_pid" ]]; then
    if ! wait "$bootstrap_pid"; then
        bootstrap_pid=
        tail -n 20 "$work/debootstrap.log" >&2
        die "debootstrap failed (log: $work/debootstrap.log)"
    fi
    bootstrap_pid=
fi
[[ -f "$cache" ]] || die "no root tarball $cache"
in_root() { chroot "$root" "$@"; }
# A fresh root from the cache, with what Asterisk's packages leave (mode 2770:
# group asterisk writes the include dirs; docs/install.md says what the admin must ensure)
# and the snippets' lines.
new_root() {
    rm -rf --one-file-system "$root"
    mkdir -p "$root"
    tar -C "$root" -xzf "$cache"
    in_root adduser --system --group --quiet --home /var/lib/asterisk --no-create-home asterisk
    in_root install -d -m 0750 -o asterisk -g asterisk /etc/asterisk
    in_root install -d -m 2770 -o asterisk -g asterisk \
        /etc/asterisk/pjsip.d/synergycall /etc/asterisk/extensions.d/synergycall
    local f
    for f in pjsip.conf extensions.conf manager.conf; do
        { echo "; the admin's own $f"; cat "asterisk-snippets/$f"; } >"$root/etc/asterisk/$f"
        in_root chown root:asterisk "/etc/asterisk/$f"
        chmod 0640 "$root/etc/asterisk/$f"
    done
}
new_root
asterisk_state() {
    (cd "$root" && find etc/asterisk -printf '%p %U:%G %m %s\n' | sort && find etc/asterisk -type f -exec sha256sum {} + | sort)
}
asterisk_before=$(asterisk_state)
say "root ready: $(in_root sh -c '. /etc/os-release; echo "$PRETTY_NAME"'), asterisk user, /etc/asterisk planted"

# --- 6. install -----------------------------------------------------------------
step "6. install"
cp "$deb" "$root/tmp/"
# As docs/install.md tells the admin: apt installs the file with its dependencies (all in
# the root already: no download). No pty in the root for apt's log.
install_out=$(in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -o Dpkg::Use-Pty=0 \
    "/tmp/$(basename "$deb")" </dev/null 2>&1) || { printf '%s\n' "$install_out"; die "apt-get install failed"; }
printf '%s\n' "$install_out" | sed 's/^/  /'
grep -q 'pbx-portal: enabled but not started: set DATABASE_URL and PORTAL_API_TOKEN' <<<"$install_out" \
    || die "the postinst did not say why the service is not started"
[[ "$(in_root dpkg-query -W -f '${Status} ${Version}' pbx-portal)" == "install ok installed $deb_version" ]] \
    || die "not installed: $(in_root dpkg-query -W -f '${Status} ${Version}' pbx-portal)"
IFS=: read -r _ _ uid gid _ home shell < <(in_root getent passwd pbx-portal) || die "no user pbx-portal"
((uid < 1000)) || die "pbx-portal is not a system user (uid $uid)"
[[ "$home" == /nonexistent && "$shell" == /usr/sbin/nologin ]] || die "pbx-portal: home $home, shell $shell"
[[ "$(in_root getent group pbx-portal | cut -d: -f3)" == "$gid" ]] || die "pbx-portal's primary group is not pbx-portal"
in_root id -nG pbx-portal | tr ' ' '\n' | grep -qx asterisk || die "pbx-portal is not in the asterisk group"
check_stat() { # path owner:group mode
    local got
    got=$(in_root stat -c '%U:%G %a' "$1") || die "missing: $1"
    [[ "$got" == "$2 $3" ]] || die "$1 is $got, expected $2 $3"
}
check_stat /usr/bin/pbx-portal root:root 755
check_stat /etc/pbx-portal root:pbx-portal 750
check_stat /etc/pbx-portal/pbx-portal.env root:pbx-portal 640
check_stat /usr/lib/systemd/system/pbx-portal.service root:root 644
check_stat /usr/share/doc/pbx-portal/README.md root:root 644
check_stat /usr/share/doc/pbx-portal/configuration.md root:root 644
check_stat /usr/share/doc/pbx-portal/copyright root:root 644
check_stat /usr/share/doc/pbx-portal/changelog.Debian.gz root:root 644
check_stat /usr/share/doc/pbx-portal/asterisk-snippets/pjsip.conf root:root 644
check_stat /usr/share/man/man1/pbx-portal.1.gz root:root 644
[[ -L "$root/etc/systemd/system/multi-user.target.wants/pbx-portal.service" ]] || die "the unit is not enabled"
[[ ! -e "$root/var/lib/pbx-portal" ]] || die "/var/lib/pbx-portal exists before the first start"
[[ "$(in_root dpkg-query -W -f '${Conffiles}' pbx-portal | awk 'NF { print $1 }')" == /etc/pbx-portal/pbx-portal.env ]] \
    || die "dpkg does not list the env file as a conffile"
[[ "$(asterisk_state)" == "$asterisk_before" ]] || die "installing changed /etc/asterisk"
got_version=$(in_root /usr/bin/pbx-portal --version)
[[ "$got_version" == "pbx-portal $version" ]] || die "pbx-portal --version: $got_version"
say "installed: user pbx-portal ($uid:$gid, in asterisk), owners and modes ok, unit enabled, $got_version"

# Empty values are no configuration: the postinst must still refuse to start.
printf '%s\n' 'DATABASE_URL=""' 'PORTAL_API_TOKEN=' >>"$root/etc/pbx-portal/pbx-portal.env"
reconf_out=$(in_root /var/lib/dpkg/info/pbx-portal.postinst configure "$deb_version" 2>&1) \
    || { printf '%s\n' "$reconf_out"; die "postinst configure failed"; }
grep -q 'pbx-portal: enabled but not started' <<<"$reconf_out" || die "the postinst took empty values for configuration"

# The admin's edit: a throwaway database on the local PostgreSQL (pg.sh), a token,
# AMI credentials, and addresses of this check's own. There is no Asterisk in the
# root, so the ami line must fail as unreachable; the AMI address is a port this
# script holds bound without listening (refused, whatever listens on the default
# 127.0.0.1:5038 of this host: a real Asterisk would answer the login). The HTTP and
# FastAGI addresses are free ports, so the fastagi line finds its port free.
# shellcheck source=scripts/pg.sh
. scripts/pg.sh
ensure_postgres
[[ "$PG_ADMIN_URL" == postgres://*/* ]] || die "need a postgres:// URL for the root's database (TEST_DATABASE_URL)"
db_name="pbx_portal_deb_$$"
psql "$PG_ADMIN_URL" -XAtqc "CREATE DATABASE \"$db_name\"" >/dev/null
token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
hold_closed_port
read -r check_http_port check_agi_port < <(free_ports 2)
{
    echo
    echo "# edited by the admin"
    echo "DATABASE_URL=${PG_ADMIN_URL%/*}/$db_name"
    echo "PORTAL_API_TOKEN=$token"
    echo "PORTAL_AMI_ADDR=127.0.0.1:$closed_port"
    echo "PORTAL_AMI_USERNAME=portal"
    echo "PORTAL_AMI_SECRET=not-$token"
    echo "PORTAL_LISTEN=127.0.0.1:$check_http_port"
    echo "PORTAL_AGI_LISTEN=127.0.0.1:$check_agi_port"
} >>"$root/etc/pbx-portal/pbx-portal.env"
as_portal() { # the command docs/install.md gives the admin
    in_root runuser -u pbx-portal -- sh -c "set -a; . /etc/pbx-portal/pbx-portal.env; exec pbx-portal $1" 2>&1
}
migrate_out=$(as_portal migrate) || { printf '%s\n' "$migrate_out"; die "pbx-portal migrate failed"; }
set +e
check_out=$(as_portal check)
check_rc=$?
set -e
printf '%s\n' "$check_out" | sed 's/^/  /'
((check_rc != 0)) || die "pbx-portal check succeeded without an Asterisk"
for re in '^ok +database +reachable and migrated$' \
    '^ok +pjsip dir +/etc/asterisk/pjsip.d/synergycall is writable$' \
    '^ok +dialplan dir +/etc/asterisk/extensions.d/synergycall is writable$' \
    '^ok +pjsip.conf +' '^ok +extensions.conf +' "^FAIL +ami +AMI unreachable: connect to 127\\.0\\.0\\.1:$closed_port: " \
    "^ok +fastagi +127\\.0\\.0\\.1:$check_agi_port is free\$"; do
    grep -qE "$re" <<<"$check_out" || die "pbx-portal check: no line matching /$re/"
done
release_closed_port
say "pbx-portal check as pbx-portal: database, include dirs and lines ok; AMI fails as it must"

# --- 7. upgrade -----------------------------------------------------------------
step "7. upgrade"
up_version="$deb_version+upgradetest1"
up_out=$(cargo deb --no-build --no-dbgsym --strip --fast --deb-version "$up_version" --output "$work/pkg/up.deb" 2>&1) \
    || { printf '%s\n' "$up_out"; die "cargo deb --deb-version $up_version failed"; }
dpkg --compare-versions "$up_version" gt "$deb_version" || die "$up_version is not newer than $deb_version"
[[ "$(dpkg-deb -c "$work/pkg/up.deb" | awk '$1 !~ /^d/ { print $1, $2, $6 }' | sort)" == "$expected" ]] \
    || die "the rebuilt package's files differ from the package's"
# cargo deb --output elsewhere empties target/debian: put the tested package back.
cp "$deb" "$work/pkg/pbx-portal-dbgsym_${deb_version}_${arch}.ddeb" "$target/debian/"
env_before=$(sha256sum <"$root/etc/pbx-portal/pbx-portal.env")
cp "$work/pkg/up.deb" "$root/tmp/"
upgrade_out=$(in_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -o Dpkg::Use-Pty=0 \
    /tmp/up.deb </dev/null 2>&1) || { printf '%s\n' "$upgrade_out"; die "upgrade failed"; }
printf '%s\n' "$upgrade_out" | sed 's/^/  /'
[[ "$(in_root dpkg-query -W -f '${Version}' pbx-portal)" == "$up_version" ]] || die "not upgraded to $up_version"
grep -q 'pbx-portal: configured; systemd is not running here' <<<"$upgrade_out" \
    || die "the postinst did not see the edited env file as configured"
[[ "$(sha256sum <"$root/etc/pbx-portal/pbx-portal.env")" == "$env_before" ]] || die "the upgrade changed the edited env file"
leftovers=$(find "$root/etc/pbx-portal" -name '*.dpkg-*')
[[ -z "$leftovers" ]] || die "the upgrade left $leftovers"
check_stat /etc/pbx-portal/pbx-portal.env root:pbx-portal 640
check_stat /etc/pbx-portal root:pbx-portal 750
[[ "$(in_root id -u pbx-portal)" == "$uid" ]] || die "the upgrade changed pbx-portal's uid"
[[ "$(asterisk_state)" == "$asterisk_before" ]] || die "upgrading changed /etc/asterisk"
say "upgraded to $up_version: edited env file kept byte for byte, 0640 root:pbx-portal"

# --- 8. purge -------------------------------------------------------------------
step "8. purge"
# A file the service would have written (pbx-portal:asterisk 0640): Asterisk's now.
gen=/etc/asterisk/pjsip.d/synergycall/generated_endpoints.conf
echo "; generated — do not edit" >"$root$gen"
in_root chown pbx-portal:asterisk "$gen"
chmod 0640 "$root$gen"
asterisk_before=$(asterisk_state)
purge_out=$(in_root env DEBIAN_FRONTEND=noninteractive apt-get purge -y -o Dpkg::Use-Pty=0 pbx-portal \
    </dev/null 2>&1) || { printf '%s\n' "$purge_out"; die "purge failed"; }
printf '%s\n' "$purge_out" | sed 's/^/  /'
[[ -z "$(in_root dpkg-query -W -f '${Status}' pbx-portal 2>/dev/null)" ]] \
    || die "still known to dpkg: $(in_root dpkg-query -W -f '${Status}' pbx-portal)"
! in_root getent passwd pbx-portal >/dev/null || die "the user pbx-portal is still there"
! in_root getent group pbx-portal >/dev/null || die "the group pbx-portal is still there"
in_root getent group asterisk | grep -qv 'pbx-portal' || die "pbx-portal is still listed in group asterisk"
for p in /etc/pbx-portal /var/lib/pbx-portal /usr/bin/pbx-portal /usr/lib/systemd/system/pbx-portal.service \
    /etc/systemd/system/multi-user.target.wants/pbx-portal.service; do
    [[ ! -e "$root$p" && ! -L "$root$p" ]] || die "$p is still there after purge"
done
[[ "$(asterisk_state)" == "$asterisk_before" ]] || die "purging changed /etc/asterisk:
$(diff <(echo "$asterisk_before") <(asterisk_state))"
! grep -qE 'could not remove|deluser:' <<<"$purge_out" || die "the postrm could not remove the user or group"
grep -q "files under /etc/asterisk belong to pbx-portal (uid $uid)" <<<"$purge_out" \
    || die "the postrm did not name the files left under /etc/asterisk"
migrations=$(psql "${PG_ADMIN_URL%/*}/$db_name" -XAtqc 'SELECT count(*) FROM schema_migrations') \
    || die "the database is gone after purge"
((migrations > 0)) || die "the database lost its migrations"
say "purged: user, group, /etc/pbx-portal, unit gone; /etc/asterisk untouched; database kept"

# --- 9. under systemd ----------------------------------------------------------
step "9. under systemd (systemd-nspawn)"
new_root
# Not /tmp: systemd-nspawn mounts a fresh tmpfs there.
cp "$deb" "$work/pkg/up.deb" "$root/root/"
systemd-nspawn --quiet -D "$root" -b -M "pbx-deb-$$" --register=no --keep-unit \
    </dev/null >"$work/nspawn.log" 2>&1 &
nspawn_pid=$!
box_init=
for _ in $(seq 1 100); do
    for pid in $(pgrep -P "$nspawn_pid" || true); do
        [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == systemd ]] && box_init=$pid
    done
    [[ -n "$box_init" ]] && break
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.1
done
[[ -n "$box_init" ]] || { tail -n 20 "$work/nspawn.log" >&2; die "systemd-nspawn did not boot the root (log: $work/nspawn.log)"; }
in_box() { nsenter -t "$box_init" -a -- "$@"; }
box_die() {
    in_box journalctl -u pbx-portal.service --no-pager -n 30 2>&1 | sed 's/^/  /' >&2 || true
    die "$@"
}
# systemctl cannot connect until PID 1 has made its socket: retry that, then wait.
boot_state=
for _ in $(seq 1 120); do
    boot_state=$(timeout 60 nsenter -t "$box_init" -a -- systemctl is-system-running --wait 2>&1 || true)
    [[ "$boot_state" == *"Failed to connect to bus"* ]] || break
    kill -0 "$nspawn_pid" 2>/dev/null || break
    sleep 0.5
done
case "$boot_state" in
    running) ;;
    degraded) say "booted degraded: $(in_box systemctl --failed --no-legend --plain | awk '{ print $1 }' | tr '\n' ' ')" ;;
    *) tail -n 20 "$work/nspawn.log" >&2; die "the container did not boot: $boot_state" ;;
esac
say "booted: $(in_box systemctl --version | head -n 1) as PID 1 of the root"
box_apt() {
    in_box env DEBIAN_FRONTEND=noninteractive apt-get -y -o Dpkg::Use-Pty=0 "$@" </dev/null 2>&1
}
unit_state() { in_box systemctl is-active pbx-portal.service 2>/dev/null || true; }
main_pid() { in_box systemctl show -p MainPID --value pbx-portal.service; }

out=$(box_apt install "/root/$(basename "$deb")") || { printf '%s\n' "$out"; die "apt-get install under systemd failed"; }
grep -q 'pbx-portal: enabled but not started' <<<"$out" || { printf '%s\n' "$out"; die "no 'not started' note under systemd"; }
[[ "$(in_box systemctl is-enabled pbx-portal.service)" == enabled ]] || die "not enabled under systemd"
[[ "$(unit_state)" == inactive ]] || die "started before it was configured: $(unit_state)"

read -r http_port agi_port < <(free_ports 2)
token=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
{
    echo "DATABASE_URL=${PG_ADMIN_URL%/*}/$db_name"
    echo "PORTAL_API_TOKEN=\"$token\""
    echo "PORTAL_RELOAD=none"
    echo "PORTAL_LISTEN=127.0.0.1:$http_port"
    echo "PORTAL_AGI_LISTEN=127.0.0.1:$agi_port"
} >>"$root/etc/pbx-portal/pbx-portal.env"
in_box systemctl start pbx-portal.service || box_die "systemctl start pbx-portal failed"
wait_healthy() {
    local _
    for _ in $(seq 1 50); do
        curl -fsS -o /dev/null "http://127.0.0.1:$http_port/healthz" 2>/dev/null && return 0
        sleep 0.2
    done
    box_die "/healthz did not answer 200 within 10 s ($1)"
}
wait_healthy "first start"
pid=$(main_pid)
ids=$(in_box awk '/^Uid:/ { u = $2 } /^Gid:/ { g = $2 } END { print u ":" g }' "/proc/$pid/status")
want="$(in_box id -u pbx-portal):$(in_box getent group asterisk | cut -d: -f3)"
[[ "$ids" == "$want" ]] || box_die "the service runs as uid:gid $ids, expected $want (pbx-portal:asterisk)"
api() { curl -fsS -H "Authorization: Bearer $token" "$@"; }
api -H 'Content-Type: application/json' -d '{"name": "Deb Check", "email": "deb@example.com"}' \
    "http://127.0.0.1:$http_port/users" >/dev/null || box_die "POST /users failed"
apply=$(api -X POST "http://127.0.0.1:$http_port/apply") || box_die "POST /apply failed"
grep -q '"status":"applied"' <<<"$apply" || box_die "apply: $apply"
for f in /etc/asterisk/pjsip.d/synergycall/generated_endpoints.conf /etc/asterisk/extensions.d/synergycall/generated_routing.conf; do
    got=$(in_box stat -c '%U:%G %a' "$f") || box_die "the apply wrote no $f"
    [[ "$got" == "pbx-portal:asterisk 640" ]] || box_die "$f is $got, expected pbx-portal:asterisk 640"
done
say "started once configured: uid:gid $ids (pbx-portal:asterisk), /healthz 200, apply wrote pbx-portal:asterisk 0640 files"

out=$(box_apt install /root/up.deb) || { printf '%s\n' "$out"; die "upgrade under systemd failed"; }
[[ "$(unit_state)" == active && "$(main_pid)" != "$pid" ]] \
    || box_die "upgrade while running: $(unit_state), MainPID $(main_pid) (was $pid): not restarted"
wait_healthy "after the upgrade"
in_box systemctl stop pbx-portal.service
out=$(in_box dpkg -i /root/up.deb </dev/null 2>&1) || { printf '%s\n' "$out"; die "reinstall under systemd failed"; }
[[ "$(unit_state)" == inactive ]] || box_die "reinstall started a stopped service: $(unit_state)"
say "upgrade while running restarted it; reinstall while stopped left it stopped"

in_box systemctl start pbx-portal.service || box_die "systemctl start pbx-portal failed"
wait_healthy "before the purge"
out=$(box_apt purge pbx-portal) || { printf '%s\n' "$out"; die "purge under systemd failed"; }
[[ "$(unit_state)" != active ]] || die "still running after purge"
! in_box getent passwd pbx-portal >/dev/null || die "the user pbx-portal is still there after purge"
! curl -fsS -o /dev/null "http://127.0.0.1:$http_port/healthz" 2>/dev/null || die "something still answers on the port"
[[ -f "$root/etc/asterisk/pjsip.d/synergycall/generated_endpoints.conf" ]] || die "the purge removed a generated file"
say "purge while running stopped it and removed the user; the generated files stay"
stop_container

step "done: $(basename "$deb") ok in $((SECONDS - start_time))s"
