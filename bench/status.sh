#!/bin/sh
# Status page benchmark: builds bench/status.rs (the example status_bench) in
# release mode and prints its figures as a Markdown table (for bench/notes.md).
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
cargo run --release --quiet --example status_bench
