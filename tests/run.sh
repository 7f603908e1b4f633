#!/usr/bin/env bash
# Runs the whole test suite, installing first what the tests talk to:
# Mosquitto, socat, mbpoll, sqlite3, NUT, VictoriaMetrics (apt) and pymodbus,
# aiosmtpd, pyserial (pip, in .venv at the repository root).
#
#   bash tests/run.sh                 # everything
#   bash tests/run.sh --test mqtt     # extra arguments go to `cargo test`
#
# Safe to run again: installed packages are not fetched twice.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

apt_packages=(mosquitto mosquitto-clients victoria-metrics nut-server nut-client socat mbpoll sqlite3 poppler-utils python3-venv openssl)
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

venv="$root/.venv"
if ! "$venv/bin/python" -c 'import pymodbus, aiosmtpd, serial' 2>/dev/null; then
    echo "tests/run.sh: preparing $venv (pymodbus, aiosmtpd, pyserial)" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check 'pymodbus==3.16.*' aiosmtpd pyserial
fi
export CRYOWATCH_TEST_PYTHON="$venv/bin/python"

command -v cargo >/dev/null || { echo "tests/run.sh: cargo not found; install Rust from https://rustup.rs" >&2; exit 1; }
exec cargo test --workspace "$@"
