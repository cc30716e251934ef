#!/usr/bin/env bash
# A local development instance: PostgreSQL found or started, database `pbx_portal_dev`
# created and migrated, generated files under .dev/asterisk, no Asterisk reload
# (PORTAL_RELOAD=none), a token generated once and printed with example calls.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/pg.sh

ensure_postgres
db=pbx_portal_dev
if [ "$(psql "$PG_ADMIN_URL" -XAtqc "SELECT 1 FROM pg_database WHERE datname = '$db'")" != 1 ]; then
    psql "$PG_ADMIN_URL" -Xqc "CREATE DATABASE $db"
fi

mkdir -p .dev/asterisk/pjsip.d/synergycall .dev/asterisk/extensions.d/synergycall
chmod 700 .dev
# The admin's pjsip.conf as the snippets give it (a UDP and a TLS transport), so that
# transports and encrypted calls can be tried: PORTAL_PJSIP_TRANSPORTS reads it.
[ -s .dev/asterisk/pjsip.conf ] || cat >.dev/asterisk/pjsip.conf <<CONF
; development stand-in for /etc/asterisk/pjsip.conf (nothing reads it but pbx-portal)
[transport-udp]
type = transport
protocol = udp
bind = 127.0.0.1:5060

[transport-tls]
type = transport
protocol = tls
bind = 127.0.0.1:5061

#tryinclude $PWD/.dev/asterisk/pjsip.d/synergycall/*.conf
CONF
[ -s .dev/token ] || (umask 077; head -c 24 /dev/urandom | base64 | tr '+/' '-_' > .dev/token)

export DATABASE_URL="${PG_ADMIN_URL%/*}/$db"
PORTAL_API_TOKEN="$(cat .dev/token)"
export PORTAL_API_TOKEN
export PORTAL_LISTEN="${PORTAL_LISTEN:-127.0.0.1:8080}"
export PORTAL_AGI_LISTEN="${PORTAL_AGI_LISTEN:-127.0.0.1:4573}"
export PORTAL_RELOAD=none
export PORTAL_PJSIP_DIR="$PWD/.dev/asterisk/pjsip.d/synergycall"
export PORTAL_DIALPLAN_DIR="$PWD/.dev/asterisk/extensions.d/synergycall"
export PORTAL_ASTERISK_CONFIG_DIR="$PWD/.dev/asterisk"
export PORTAL_PJSIP_TRANSPORTS="${PORTAL_PJSIP_TRANSPORTS:-transport-udp,transport-tls}"

cargo build --release --quiet
./target/release/pbx-portal migrate

base="http://$PORTAL_LISTEN"
cat <<TXT

pbx-portal (development): $base
  token:           $PORTAL_API_TOKEN
  generated files: .dev/asterisk/ (PORTAL_RELOAD=none: Asterisk is not touched)
  transports:      $PORTAL_PJSIP_TRANSPORTS (a user on transport-tls gets SRTP)

Try:
  export TOKEN=$PORTAL_API_TOKEN
  curl -s -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
       -d '{"name":"Alice Example","email":"alice@example.org"}' $base/users
  curl -s -H "Authorization: Bearer \$TOKEN" $base/users
  curl -s -H "Authorization: Bearer \$TOKEN" $base/apply/pending
  curl -s -H "Authorization: Bearer \$TOKEN" -X POST $base/apply
  cat .dev/asterisk/pjsip.d/synergycall/generated_endpoints.conf
  curl -s $base/openapi.json

Ctrl-C stops it.
TXT
exec ./target/release/pbx-portal serve
