#!/usr/bin/env bash
# Builds the `twinloop` .deb (cargo-deb; metadata in demo-app/Cargo.toml) and proves it:
# its listing holds every file it must, and it installs with dpkg into a clean directory
# (dpkg --root, the maintainer script run chrootless), where the service user, the state
# directory and fresh private keys appear, and the installed node checks its
# configuration. docs/OPERATIONS.md, "Packages".
#
#   tools/package.sh            build and check; the package is left in target/debian/
#   tools/package.sh --no-build check the package already built
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "tools/package.sh: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || die "dpkg-deb not found (a Debian system's dpkg)"
command -v cargo-deb >/dev/null || die "cargo-deb not found: cargo install cargo-deb --locked"

if [ "${1:-}" != --no-build ]; then
    cargo build --release --locked -p twinloop-demo -p twinctl -p twinloop-gateway -p twinloop-router
    rm -rf target/debian
    # --dbgsym: the release profile keeps line tables (debug = 1) for backtraces; the
    # binaries ship stripped and their debug info goes to twinloop-dbgsym (by build id,
    # where gdb and backtraces look), about 60 MB installed otherwise, 7 MB so.
    cargo deb --no-build --locked -p twinloop-demo --dbgsym
fi
deb=$(ls target/debian/twinloop_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || die "no target/debian/twinloop_*.deb"
echo "package: $deb ($(stat -c %s "$deb") bytes)"
dbgsym=$(ls target/debian/twinloop-dbgsym_*.ddeb 2>/dev/null | head -1)
[ -n "$dbgsym" ] || die "no target/debian/twinloop-dbgsym_*.ddeb (the debug symbols)"
echo "debug symbols: $dbgsym ($(stat -c %s "$dbgsym") bytes)"
dpkg-deb --info "$deb" | sed -n 's/^ *\(Package\|Version\|Architecture\|Depends\|Installed-Size\):/  &/p'

listing=$(dpkg-deb --contents "$deb")
for path in ./usr/bin/twinloop-demo ./usr/bin/twinctl ./usr/bin/twinloop-gateway ./usr/bin/twinloop-router \
    ./usr/sbin/twinloop-vip ./etc/twinloop/router.toml \
    ./lib/systemd/system/twinloop@.service ./lib/systemd/system/twinloop-gateway@.service \
    ./lib/systemd/system/twinloop-router@.service \
    ./etc/twinloop/node-a.toml ./etc/twinloop/node-b.toml \
    ./etc/twinloop/gateway-tank.toml ./usr/share/doc/twinloop/OPERATIONS.md \
    ./usr/share/doc/twinloop/CONFIG.md ./usr/share/doc/twinloop/grafana/twinloop.json; do
    grep -q " $path\$" <<<"$listing" || die "the package lacks $path"
done
if grep -q 'sync.key\|console.key' <<<"$listing"; then
    die "the package ships a key file: every installation must make its own"
fi
echo "listing: every expected file present, no key shipped"

# A clean root: dpkg's database, and the accounts files the maintainer script edits.
root=$(mktemp -d "${TMPDIR:-/tmp}/twinloop-deb-root.XXXXXX")
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates" "$root/etc"
touch "$root/var/lib/dpkg/status"
for f in passwd group shadow gshadow; do
    grep -E '^(root|nogroup|nobody):' "/etc/$f" > "$root/etc/$f" || true
done
chmod 640 "$root/etc/shadow" "$root/etc/gshadow" 2>/dev/null || true
# --force-depends: the clean root has no libc6 or passwd package recorded (they are used
# from the host); the maintainer script's own lines go to a log shown on failure.
dpkg --root="$root" --force-script-chrootless --force-not-root --no-triggers \
    --log=/dev/null --force-depends -i "$deb" >"$root/dpkg.log" 2>&1 \
    || { cat "$root/dpkg.log" >&2; die "dpkg -i into a clean root failed"; }
status=$(dpkg --root="$root" -s twinloop | sed -n 's/^Status: //p')
[ "$status" = "install ok installed" ] || die "dpkg says: $status"
grep -q '^twinloop:' "$root/etc/passwd" || die "no twinloop user made"
[ -d "$root/var/lib/twinloop" ] || die "no /var/lib/twinloop"
for key in sync.key console.key; do
    [ "$(stat -c %a "$root/etc/twinloop/$key")" = 600 ] || die "/etc/twinloop/$key is not private (0600)"
    [ "$(stat -c %s "$root/etc/twinloop/$key")" = 65 ] || die "/etc/twinloop/$key is not a 64-digit key"
done
[ "$(cat "$root/etc/twinloop/sync.key")" != "$(cat "$root/etc/twinloop/console.key")" ] || die "the two keys are equal"
# The installed node reads the installed configuration (as the unit runs it).
"$root/usr/bin/twinloop-demo" --config "$root/etc/twinloop/node-a.toml" \
    --state-file "$root/var/lib/twinloop/node-a.epoch" --check >/dev/null \
    || die "the installed node rejects its installed configuration"
"$root/usr/bin/twinctl" --version >/dev/null
"$root/usr/bin/twinloop-router" --config "$root/etc/twinloop/router.toml" --check >/dev/null \
    || die "the installed router rejects its installed configuration"
# Stripped: no .debug_info in the installed binaries; the dbgsym package has it, by build id.
dbgsym_listing=$(dpkg-deb --contents "$dbgsym")
for bin in twinloop-demo twinctl twinloop-gateway twinloop-router; do
    sections=$(readelf -S "$root/usr/bin/$bin")
    if grep -q '\.debug_info' <<<"$sections"; then
        die "/usr/bin/$bin still carries its debug info (cargo deb --dbgsym strips it)"
    fi
    id=$(readelf -n "$root/usr/bin/$bin" | sed -n 's/.*Build ID: \([0-9a-f]*\).*/\1/p')
    grep -q "/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug\$" <<<"$dbgsym_listing" \
        || die "the dbgsym package lacks the debug info of /usr/bin/$bin (build id $id)"
done
echo "binaries stripped, their debug info in $(basename "$dbgsym") by build id"
echo "installed into a clean root with dpkg: user twinloop, /var/lib/twinloop, private keys, configuration checked"
