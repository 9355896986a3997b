#!/usr/bin/env bash
# Runs every cargo-fuzz target for a fixed budget and prints one summary line
# per target (seconds, executions, crashes). Usage: fuzz/run.sh [SECONDS] [TARGET...]
#
# The seed corpus under fuzz/corpus/<target>/ is read, never written: new
# inputs go to fuzz/target/work/<target>/ (ignored by git). With MERGE=1 the
# inputs that add coverage are merged back into the seed corpus, which is kept
# small (a few kilobytes per target). Crashes land in fuzz/artifacts/<target>/.
#
# cargo-fuzz needs nightly-only flags; on a stable toolchain RUSTC_BOOTSTRAP=1
# unlocks them. Everything runs in-process: no network, no files outside fuzz/.
set -euo pipefail

cd "$(dirname "$0")"
# Builds go to fuzz/target whatever the caller's CARGO_TARGET_DIR: the
# sanitizer flags would otherwise rebuild (and churn) the main target dir.
export CARGO_TARGET_DIR="$PWD/target"
SECONDS_EACH="${1:-60}"
shift || true
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <(ls fuzz_targets | sed 's/\.rs$//')
fi
export RUSTC_BOOTSTRAP=1

# Longest input tried per target: configuration files are longer than the
# server answers, which stay well past a few protocol exchanges.
max_len() {
    case "$1" in
        config_parse) echo 8192 ;;
        *) echo 4096 ;;
    esac
}

status=0
for t in "${TARGETS[@]}"; do
    work="target/work/$t"
    mkdir -p "$work" "artifacts/$t"
    log="target/work/$t.log"
    if cargo fuzz run "$t" "$work" "corpus/$t" -- \
        -max_total_time="$SECONDS_EACH" -max_len="$(max_len "$t")" \
        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
        result=ok
    else
        result=CRASH
        status=1
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    crashes=$(find "artifacts/$t" -type f | wc -l)
    echo "$t: ${SECONDS_EACH}s, ${runs:-?} executions, $result, $crashes artifact(s)"
    if [ "${MERGE:-0}" = 1 ]; then
        "target/$(rustc -vV | sed -n 's/^host: //p')/release/$t" \
            -merge=1 -max_len="$(max_len "$t")" "corpus/$t" "$work" >>"$log" 2>&1 || true
    fi
done
exit $status
