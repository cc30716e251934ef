#!/usr/bin/env bash
# Builds the Debian package: the release binary, then the man page that binary
# generates from its command-line definition (`pbx-portal man`, hidden) into
# target/man/pbx-portal.1, an asset of [package.metadata.deb] in Cargo.toml, then
# `cargo deb` with the arguments given to this script.
#
#   scripts/build-deb.sh [cargo deb options]
#
# Output: target/debian/pbx-portal_<version>-1_<arch>.deb (and the -dbgsym .ddeb).
# The man page goes to target/man/ under the repository even when CARGO_TARGET_DIR
# points elsewhere: Cargo.toml names it by that path.
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"
target=${CARGO_TARGET_DIR:-target}
[[ "$target" == /* ]] || target="$repo_root/$target"

cargo build --release
mkdir -p target/man
"$target/release/pbx-portal" man >target/man/pbx-portal.1.tmp
mv target/man/pbx-portal.1.tmp target/man/pbx-portal.1
exec cargo deb "$@"
