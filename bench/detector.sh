#!/bin/sh
# Slowdown detector benchmark: builds the bench program (bench/detector.rs, the
# example detector_bench) in release mode, replays every labelled dataset series
# and the synthetic soak scenarios with the default settings, and writes
# bench/detector-results.md.
#
# Usage: bench/detector.sh [DATASETS_DIR]
#   DATASETS_DIR defaults to $MAILPULSE_DATASETS, else ../shared/datasets next to
#   the repository (/work/shared/datasets on the development machine).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
datasets=${1:-${MAILPULSE_DATASETS:-$repo/../shared/datasets}}
if [ ! -d "$datasets/nab" ] || [ ! -d "$datasets/msft-cmd" ]; then
    echo "detector.sh: no datasets in $datasets (pass the directory as the first argument)" >&2
    exit 1
fi
cd "$repo"
cargo run --release --quiet --example detector_bench -- "$datasets" bench/detector-results.md
