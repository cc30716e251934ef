#!/usr/bin/env bash
# What the browser tests (tests/it/console.rs → tests/console/run.mjs) need, installed when
# missing and quick when present:
# - Debian's chromium (/usr/bin/chromium), driven headless by Playwright. No test tool ever
#   downloads a browser of its own (playwright-core has no download step; never run
#   `npx playwright install`).
# - certutil (libnss3-tools): the HTTPS scenario trusts the test CA in a throwaway NSS
#   database, as a person would import it into the browser.
# - node and npm (Debian's nodejs and npm when there is no node at all).
# - tests/console/node_modules from package-lock.json (`npm ci`: playwright-core pinned),
#   redone only when the lock file changed since the last install.
# axe-core is not installed: its released file is committed under tests/console/vendor/.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "browser-deps.sh: $*"; }
missing=()
[[ -x /usr/bin/chromium ]] || missing+=(chromium)
command -v certutil >/dev/null || missing+=(libnss3-tools)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if ((${#missing[@]})); then
    say "installing ${missing[*]} (apt-get)"
    sudo=
    [[ $(id -u) -eq 0 ]] || sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

dir=tests/console
stamp=$dir/node_modules/.package-lock.sha256
want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
    say "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    echo "$want" >"$stamp"
fi
say "chromium: $(/usr/bin/chromium --version 2>/dev/null | head -n1); playwright-core $(node -p "require('./$dir/node_modules/playwright-core/package.json').version")"
