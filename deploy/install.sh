#!/usr/bin/env bash
# Installs cryowatch on a Debian facility server: binary, service user, config
# directory, systemd unit. Run as root from the repository after `cargo build --release`.
#
#   cargo build --release && sudo bash deploy/install.sh
#
# The configuration is not overwritten if it exists; edit /etc/cryowatch/cryowatch.toml,
# then `cryowatch check -c /etc/cryowatch/cryowatch.toml` and `systemctl restart cryowatch`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/target/release/cryowatch"
[[ -x $bin ]] || { echo "install.sh: build first: cargo build --release" >&2; exit 1; }
[[ $(id -u) -eq 0 ]] || { echo "install.sh: run as root" >&2; exit 1; }

id cryowatch >/dev/null 2>&1 || useradd --system --home-dir /var/lib/cryowatch --shell /usr/sbin/nologin cryowatch
install -m 0755 "$bin" /usr/bin/cryowatch
install -d -m 0750 -o root -g cryowatch /etc/cryowatch
if [[ ! -e /etc/cryowatch/cryowatch.toml ]]; then
    install -m 0640 -o root -g cryowatch "$root/config/cryowatch.example.toml" /etc/cryowatch/cryowatch.toml
    echo "install.sh: wrote /etc/cryowatch/cryowatch.toml from the example; edit it before starting" >&2
fi
install -d -m 0755 /usr/share/doc/cryowatch
install -m 0644 "$root/README.md" /usr/share/doc/cryowatch/README.md
install -m 0644 "$root/systemd/cryowatch.service" /etc/systemd/system/cryowatch.service
systemctl daemon-reload
if /usr/bin/cryowatch check -c /etc/cryowatch/cryowatch.toml; then
    systemctl enable --now cryowatch
    echo "install.sh: cryowatch is running; journalctl -u cryowatch -f" >&2
else
    echo "install.sh: fix the configuration above, then: systemctl enable --now cryowatch" >&2
fi
