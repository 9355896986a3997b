#!/usr/bin/env bash
# Allocation and time profile of mailpulse's hot paths (bench/profile): one
# HTTP probe, recording a sample, detection, and a /metrics page of 50
# targets split into gather() and text encoding. Prints a Markdown table.
#
# Usage: bench/profile.sh   (honours CARGO_TARGET_DIR; builds in release mode)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo/bench/profile"
exec cargo run --release --quiet
