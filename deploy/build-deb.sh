#!/usr/bin/env bash
# Builds the Debian package: `cargo deb` (its arguments passed on; it prints the path of
# the .deb it wrote), then adds the md5sums control file that `dpkg --verify` and
# debsums check the installed files against (cargo-deb writes none). Conffiles are left
# out of it, as Debian's own tools do: dpkg tracks their sums itself.
#
#   bash deploy/build-deb.sh            # target/debian/cryowatch_<version>-1_amd64.deb
#   bash deploy/build-deb.sh --fast     # quicker, larger (lighter compression)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v cargo-deb >/dev/null 2>&1 || cargo deb --version >/dev/null 2>&1 ||
    { echo "build-deb.sh: cargo-deb is missing: cargo install cargo-deb" >&2; exit 1; }
deb=$(cargo deb "$@" | tail -n 1)
[[ -f $deb ]] || { echo "build-deb.sh: cargo deb wrote no package (it said: $deb)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
dpkg-deb -R "$deb" "$work/pkg"
(
    cd "$work/pkg"
    sed 's|^/||' DEBIAN/conffiles 2>/dev/null | sort >"$work/conffiles" || true
    find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | sort |
        comm -23 - "$work/conffiles" | tr '\n' '\0' | xargs -0 -r md5sum >DEBIAN/md5sums
)
chmod 0644 "$work/pkg/DEBIAN/md5sums"
compress=()
[[ " $* " == *" --fast "* ]] && compress=(-Zgzip -z1)   # as cargo deb's --fast: bigger, quicker
dpkg-deb --root-owner-group "${compress[@]}" --build "$work/pkg" "$deb" >/dev/null
echo "$deb"
