#!/usr/bin/env bash
# Fuzzes the parsers that take outside input (fuzz/fuzz_targets/), each for a bounded
# time, on the stable toolchain:
#
#   mqtt_payload   MQTT number/JSON payloads with json_path and timestamp
#   modbus_decode  Modbus register words and decode specs
#   config_load    configuration files as arbitrary text
#   config_edit    the shipped configurations with structure-aware edits
#   sms_ack        SMS `ACK <id>` replies and the modem's AT / +CMGL answers
#
# Installs cargo-fuzz (pinned) if missing, builds every target once, runs each one for
# FUZZ_SECONDS (default 20) from its seeds (fuzz/seeds/<target>/) and prints one summary
# line per target. The growing corpus is kept under the target dir, never in the tree.
# Exits non-zero on any crash, timeout or out-of-memory, naming the reproducer
# (fuzz/artifacts/<target>/...) with its Debug form and the command to replay it.
#
#   bash tests/fuzz.sh                       every target, 20 s each
#   FUZZ_SECONDS=300 bash tests/fuzz.sh sms_ack
#   FUZZ_BUILD_ONLY=1 bash tests/fuzz.sh     install cargo-fuzz and build, no run
#
# libFuzzer runs without a sanitizer (`--sanitizer none`): the sanitizers need a nightly
# compiler, and the code under test is safe Rust, where panics and failed assertions are
# what there is to find. With `--sanitizer none` cargo-fuzz passes only stable flags
# (`-Cpasses=sancov-module`, `-Cllvm-args=...`, `--cfg fuzzing`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

CARGO_FUZZ_VERSION=0.13.2
FUZZ_SECONDS=${FUZZ_SECONDS:-20}
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    TARGETS=(mqtt_payload modbus_decode config_load config_edit sms_ack)
fi
# The instrumented build shares nothing with the main one (other flags): keep it apart.
TARGET_DIR=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-$ROOT/target}/fuzz}
WORK=$TARGET_DIR/work
# A debug build with optimisation level 1 (fuzz/Cargo.toml): it builds in a fraction of
# the time of cargo-fuzz's default (release with one codegen unit) and still runs
# thousands of inputs a second. FUZZ_RELEASE=1 for long runs: cargo-fuzz's default
# build (release profile, one codegen unit, debug assertions on).
BUILD=(--sanitizer none --target-dir "$TARGET_DIR")
if [ "${FUZZ_RELEASE:-0}" != 1 ]; then
    BUILD+=(--dev)
fi

if ! cargo fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    echo "== installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION"
fi

echo "== building ${TARGETS[*]}"
start=$SECONDS
cargo fuzz build "${BUILD[@]}"
echo "== built in $((SECONDS - start)) s"
# FUZZ_BUILD_ONLY=1: install and build, nothing more (tests/run.sh builds while the
# test suite runs, whose peers leave the CPU mostly idle).
if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
    exit 0
fi

# Inputs libFuzzer may grow to: a configuration needs room, a payload does not.
max_len() {
    case $1 in
        config_load) echo 16384 ;;
        *) echo 4096 ;;
    esac
}

failed=()
summary=()
for t in "${TARGETS[@]}"; do
    corpus=$WORK/$t/corpus
    mkdir -p "$corpus" "$WORK/$t/tmp"
    seeds=("fuzz/seeds/$t")
    extra=()
    if [ "$t" = config_load ]; then
        # The shipped configurations are seeds too, and the schema's keys a dictionary.
        seeds+=(config)
        extra+=("-dict=fuzz/seeds/config_load.dict")
    fi
    log=$WORK/$t/run.log
    echo "== fuzzing $t for $FUZZ_SECONDS s (log: $log)"
    status=0
    TMPDIR=$WORK/$t/tmp cargo fuzz run "${BUILD[@]}" "$t" "$corpus" "${seeds[@]}" -- \
        -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
        -max_len="$(max_len "$t")" -print_final_stats=1 "${extra[@]}" >"$log" 2>&1 || status=$?
    rm -rf "${WORK:?}/$t/tmp"

    # libFuzzer's closing statistics and its last status line.
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    last=$(grep -E '^#[0-9]+' "$log" | tail -1 || true)
    cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
    ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
    corp=$(sed -n 's/.* corp: \([0-9]*\).*/\1/p' <<<"$last")
    if [ "$status" = 0 ]; then
        verdict=ok
    else
        # deadly signal (a panic or failed assertion), timeout, out-of-memory, ...
        kind=$(grep -oE 'ERROR: libFuzzer: [a-z -]+' "$log" | head -1 | sed 's/^ERROR: libFuzzer: //; s/ after$//; s/ *$//' || true)
        if [ "$kind" = "deadly signal" ] && grep -q "panicked at" "$log"; then
            kind=panic
        fi
        verdict="FAILED: ${kind:-exit $status}"
        failed+=("$t")
    fi
    summary+=("$(printf '%-14s %10s runs %8s exec/s  cov %6s  ft %6s  corpus %5s  %s' \
        "$t" "${runs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$verdict")")
    if [ "$status" != 0 ]; then
        # The panic, the reproducer, its Debug form and how to replay and minimise it.
        echo "---- $t failed; from $log:"
        grep -E -A3 "panicked at|ERROR: libFuzzer|SUMMARY" "$log" | head -20 || true
        sed -n '/^Failing input:/,$p' "$log"
    fi
done

echo
echo "== fuzz summary (${FUZZ_SECONDS} s per target, corpus in $WORK)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzzing found failures in: ${failed[*]}"
    exit 1
fi
echo "no crash, timeout or out-of-memory"
