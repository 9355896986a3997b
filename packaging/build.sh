#!/usr/bin/env bash
# Builds the release binary and both packages:
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
cargo deb --no-build
cargo generate-rpm
ls -1 target/debian/*.deb target/generate-rpm/*.rpm
