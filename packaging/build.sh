#!/usr/bin/env bash
# Builds the release binary, its manual pages and shell completions (made by
# the binary itself, `mailpulse generate-docs`, into target/assets), and
# both packages:
#   target/debian/mailpulse_<version>-1_<arch>.deb
#   target/generate-rpm/mailpulse-<version>-1.<arch>.rpm
# Installs cargo-deb and cargo-generate-rpm first if they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install --locked cargo-deb
command -v cargo-generate-rpm >/dev/null || cargo install --locked cargo-generate-rpm

# The packaging metadata names target/release/...; keep the default target dir.
unset CARGO_TARGET_DIR
cargo build --release --locked
# The pages and completions come from the binary just built, so they match
# its flags; man pages are gzipped (-n: no name or time, reproducible).
rm -rf target/assets
target/release/mailpulse generate-docs --out target/assets >/dev/null
gzip -9n target/assets/man/*.1
cargo deb --no-build
cargo generate-rpm
ls -1 target/debian/*.deb target/generate-rpm/*.rpm
