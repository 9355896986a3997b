#!/usr/bin/env bash
# The performance benchmark: mailpulse against node_exporter + blackbox_exporter,
# side by side on this machine. Installs the peers (Debian packages), builds
# mailpulse and the harness in release mode, runs the scenarios and writes
# bench/RESULTS.md. Everything binds 127.0.0.1, every load is bounded and stops
# by itself, and every process is stopped by the PID it was started with.
#
# Usage: bench/run.sh [--quick] [--only side,accuracy,scale,steady,incidents] [--steady-seconds N]
#   --quick   about 5 minutes, for smoke runs (default: the full run, about an hour)
#   --only    run only these scenarios; the other sections of RESULTS.md are
#             kept from earlier runs on this machine (bench/out/), else from
#             RESULTS.md as it stands
#   --steady-seconds N  length of the steady run (full: 900; a whole accelerated
#             day at 10x is 8640)
# Environment: CARGO_TARGET_DIR as usual (default: target/).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bash bench/install-deps.sh

target_dir=${CARGO_TARGET_DIR:-$repo/target}
cargo build --release --quiet --bin mailpulse
CARGO_TARGET_DIR="$target_dir/bench-harness" \
    cargo build --release --quiet --manifest-path bench/harness/Cargo.toml

MAILPULSE_COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]; then
    MAILPULSE_COMMIT="$MAILPULSE_COMMIT+dirty"
fi
export MAILPULSE_COMMIT

exec "$target_dir/bench-harness/release/mailpulse-bench" run \
    --mailpulse "$target_dir/release/mailpulse" \
    --out bench/out --results bench/RESULTS.md "$@"
