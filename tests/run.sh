#!/usr/bin/env bash
# Runs the whole test suite, installing first what the tests talk to:
# Mosquitto, RabbitMQ (its MQTT plugin), exim4, socat, mbpoll, sqlite3, NUT, VictoriaMetrics, poppler-utils, Chromium,
# wrk, faketime, fuse3, debootstrap and systemd-container (apt: the package test boots a Debian with systemd); pymodbus, modbus-tk, aiosmtpd, pyserial, mfusepy, schemathesis (pip, in .venv at the
# repository root);
# playwright-core (npm, in tests/browser) for the browser test; cargo-deb (cargo; tests/fuzz.sh installs cargo-fuzz).
# Without arguments it runs what CI runs: formatting and lints, every test (the
# fault-injection suite included), every benchmark at its quick size, and the fuzz
# targets for FUZZ_SECONDS (10) each.
#
#   bash tests/run.sh                 # everything
#   bash tests/run.sh --test mqtt     # extra arguments go to `cargo test` alone
#
# Safe to run again: installed packages are not fetched twice.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

apt_packages=(mosquitto mosquitto-clients rabbitmq-server exim4-daemon-light victoria-metrics nut-server nut-client socat mbpoll sqlite3 poppler-utils python3-venv openssl wrk chromium fonts-dejavu-core faketime fuse3 debootstrap systemd-container)
missing=()
for p in "${apt_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "tests/run.sh: installing ${missing[*]}" >&2
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The packaged broker must not hold the default port or our test files: tests start their own.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
    ${sudo:-} systemctl stop mosquitto || true
fi
# Likewise Debian's RabbitMQ: tests/common/rabbitmq.rs runs its own node, epmd and ports
# (the Debian epmd on port 4369 may stay), and two brokers would only compete for memory.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet rabbitmq-server 2>/dev/null; then
    ${sudo:-} systemctl stop rabbitmq-server || true
elif command -v service >/dev/null 2>&1 && [[ -x /etc/init.d/rabbitmq-server ]]; then
    ${sudo:-} service rabbitmq-server stop >/dev/null 2>&1 || true
fi
# Likewise Debian's exim4 starts a system MTA on port 25: tests/common/exim.rs runs its own.
if command -v service >/dev/null 2>&1 && [[ -x /etc/init.d/exim4 ]]; then
    ${sudo:-} service exim4 stop >/dev/null 2>&1 || true
fi

venv="$root/.venv"
# modbus-tk: a second Modbus server, several units on one port (tests/peers/modbus_tk_server.py).
# mfusepy: the power-cut fault scenario's FUSE layer (tests/peers/lazyfs.py).
# schemathesis: checks the API against its OpenAPI document (tests/api_schema.rs).
if ! "$venv/bin/python" -c 'import pymodbus, modbus_tk, aiosmtpd, serial, mfusepy, schemathesis' 2>/dev/null; then
    echo "tests/run.sh: preparing $venv (pymodbus, modbus-tk, aiosmtpd, pyserial, mfusepy, schemathesis)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'pymodbus==3.16.*' 'modbus-tk==1.1.*' aiosmtpd pyserial 'mfusepy==3.*' 'schemathesis==4.*'
fi
export CRYOWATCH_TEST_PYTHON="$venv/bin/python"

# The browser test (tests/web.rs): Debian's chromium driven by playwright-core from npm,
# which never downloads a browser of its own. Node.js comes with the machine; Debian's
# is the fallback.
if ! command -v node >/dev/null 2>&1; then
    echo "tests/run.sh: installing nodejs npm" >&2
    as_root=""
    [[ $(id -u) -eq 0 ]] || as_root="sudo"
    $as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $as_root apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
browser="$root/tests/browser"
wanted=$(cd "$browser" && node -p "require('./package-lock.json').packages['node_modules/playwright-core'].version")
have=$(cd "$browser" && node -p "require('./node_modules/playwright-core/package.json').version" 2>/dev/null || true)
if [[ "$have" != "$wanted" ]]; then
    echo "tests/run.sh: installing playwright-core $wanted in tests/browser (npm ci)" >&2
    (cd "$browser" && npm ci --no-audit --no-fund --loglevel=error)
fi

command -v cargo >/dev/null || { echo "tests/run.sh: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
target_dir="${CARGO_TARGET_DIR:-$root/target}"
# A clean checkout builds once: incremental state would only double the disk it takes.
# A target directory kept from earlier runs still holds every earlier build of this
# workspace's own crates (each test binary tens of MB, one set per commit, incremental
# state in GB): drop them, and keep the dependencies, which do not change per commit.
if [[ "${CI:-}" == true ]]; then
    export CARGO_INCREMENTAL=0
    if [[ -d "$target_dir" ]]; then
        rm -rf "$target_dir"/{debug,release}/incremental
        cargo clean --quiet -p cryowatch -p cryosim || true
        if [[ -d "$target_dir/fuzz" ]]; then
            cargo clean --quiet --manifest-path fuzz/Cargo.toml --target-dir "$target_dir/fuzz" -p cryowatch-fuzz -p cryowatch || true
        fi
    fi
fi
# The whole run needs about 6 GB under the target directory (tests, release package,
# benchmarks, fuzz targets): say what there is, so a full disk is named before it bites.
mkdir -p "$target_dir"
free_kb=$(df -Pk "$target_dir" | awk 'NR == 2 {print $4}')
echo "tests/run.sh: $((free_kb / 1024 / 1024)) GB free under $target_dir" >&2
if ((free_kb < 8 * 1024 * 1024)); then
    echo "tests/run.sh: warning: less than 8 GB free under $target_dir; the build may fail with 'No space left on device'" >&2
fi
# The package test (tests/package.rs) builds the .deb with cargo-deb.
if ! cargo deb --version >/dev/null 2>&1; then
    echo "tests/run.sh: installing cargo-deb" >&2
    cargo install --quiet --locked cargo-deb --version 3.8.0
fi
if (($# > 0)); then
    exec cargo test --workspace "$@"
fi
if command -v rustup >/dev/null 2>&1; then
    rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
# Every test, the fault-injection suite (tests/faults) among them. The fuzz targets'
# instrumented build shares nothing with this one: it runs meanwhile, while the tests
# mostly wait on their peers.
cargo test --workspace --no-run
fuzz_build_log="$target_dir/fuzz-build.log"
mkdir -p "$(dirname "$fuzz_build_log")"
FUZZ_BUILD_ONLY=1 bash tests/fuzz.sh >"$fuzz_build_log" 2>&1 &
fuzz_build=$!
tests_ok=0
cargo test --workspace || tests_ok=$?
fuzz_ok=0
wait "$fuzz_build" || fuzz_ok=$?
if ((fuzz_ok != 0)); then
    cat "$fuzz_build_log" >&2
    echo "tests/run.sh: building the fuzz targets failed" >&2
    exit 1
fi
((tests_ok == 0)) || exit "$tests_ok"
# Every benchmark at its quick size in the test build: proves they run; the figures
# come from `cargo bench --bench report`.
BENCH_QUICK=1 cargo test --bench report
# The parsers of outside input under libFuzzer, a bounded time each.
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" bash tests/fuzz.sh
