#!/bin/sh
# Reliability runs that take longer than the default `cargo test`: the kill -9
# loop, the full-minute scrape flood and a longer hostile fleet. Each is a test
# against the real binary on 127.0.0.1 only, bounded in count and time, and
# stops by itself; the figures are printed (see bench/RELIABILITY.md).
#
# Usage: bench/reliability.sh [kill9|flood|hostile|listener|receivers|all]
#   MAILPULSE_KILLS   kills in the kill -9 loop (default 50)
#   MAILPULSE_SEED    seed of the kill moments and receiver 503s (default random)
#   MAILPULSE_FLOOD_SECS    flood length in seconds (default here 60)
#   MAILPULSE_HOSTILE_SECS  hostile fleet length in seconds (default here 60)
#   MAILPULSE_ATTACK_SECS   listener attack length in seconds (default 30)
set -eu
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
what=${1:-all}

run() {
    cargo test --quiet --test integration "$1::" -- --nocapture 2>&1 |
        grep -E '^(kill9|scrape flood|hostile fleet):|test result|panicked|FAILED' || true
}

case "$what" in
kill9 | all)
    MAILPULSE_KILLS=${MAILPULSE_KILLS:-50} cargo test --quiet --test integration kill9:: -- --ignored --nocapture 2>&1 |
        grep -E '^kill9:|test result|panicked|FAILED|pages that' || true
    ;;
esac
case "$what" in
flood | all)
    MAILPULSE_FLOOD_SECS=${MAILPULSE_FLOOD_SECS:-60} run scrape_flood
    ;;
esac
case "$what" in
hostile | all)
    MAILPULSE_HOSTILE_SECS=${MAILPULSE_HOSTILE_SECS:-60} run hostile_fleet
    ;;
esac
case "$what" in
listener | all)
    # 3,000 slow-header clients and a wrong-password flood against the
    # metrics listener while a scraper scrapes (tests/integration/web_limits.rs); the
    # test raises its own descriptor limit to the hard limit.
    cargo test --quiet --test integration web_limits::listener_under_attack -- --ignored --nocapture 2>&1 |
        grep -E '^listener attack:|test result|panicked|FAILED' || true
    ;;
esac
case "$what" in
receivers | all)
    cargo test --quiet --test integration alert_misbehaving:: -- --ignored --nocapture 2>&1 |
        grep -E '^(healthy|trickle|[a-z]-[a-z]+):|test result|panicked|FAILED' || true
    ;;
esac
