#!/usr/bin/env bash
# Build the dtle .deb and .rpm packages (Go dtle's layout) into target/package/:
#
#   deploy/package.sh
#
#   dtle_<version>-<release>_<arch>.deb      cargo-deb, from [package.metadata.deb] in driver/Cargo.toml
#   dtle-<version>-<release>.<arch>.rpm      nFPM, from deploy/package/nfpm-rpm.yaml (relocatable: --prefix=DIR)
#   dtle-<version>-<release>.<arch>.debug    the debug info stripped from the packaged binary (see below)
#
# Both packages hold the stripped binary as the Nomad plugin /usr/share/dtle/nomad-plugin/dtle with /usr/bin/dtle
# linking to it, the configs /etc/dtle/{nomad,consul}.hcl and nats.conf (config files: upgrades keep edits),
# example jobs in /usr/share/dtle/scripts/ (example.job.hcl, ...), the units dtle-nomad, dtle-consul and
# dtle-nats, and scripts that create the dtle user, /var/lib/dtle and /var/log/dtle. Nomad, Consul and nats-server
# are not included (deploy/package/README.md).
#
# The debug info: the packaged binary carries a .gnu_debuglink to dtle.debug; gdb finds it when it is copied to
# /usr/lib/debug/usr/share/dtle/nomad-plugin/dtle.debug.
#
# Environment: DTLE_PKG_VERSION (default: the crate's version), DTLE_PKG_RELEASE (default 1; the upgrade check
# builds release 2), DTLE_PKG_OUT (default target/package), DTLE_PKG_NO_BUILD=1 (use the existing release binary),
# DTLE_PKG_CONFIG_NOTE (a comment line appended to the packaged configs; the upgrade check makes v2's differ).
# The packaging tools are installed when missing (not on the PATH), into ~/.cache/dtle-test/pkgtools: cargo-deb
# (`cargo install --locked`; its PyPI wheel is 2.0.0, too old to package a symlink) and nFPM (`go install` of its
# Go module). objcopy (binutils) must be there.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

CARGO_DEB_VERSION=3.8.0
NFPM_VERSION=v2.48.0
tools="${DTLE_PKGTOOLS_DIR:-$HOME/.cache/dtle-test/pkgtools}"
out="${DTLE_PKG_OUT:-$repo/target/package}"
stage="$repo/target/package/stage"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"
release="${DTLE_PKG_RELEASE:-1}"

log() { echo "package.sh: $*" >&2; }
die() {
    log "$*"
    exit 1
}

# --- tools -------------------------------------------------------------------------------------------------------
run_cargo_deb() {
    if type -P cargo-deb >/dev/null; then
        cargo-deb "$@"
        return
    fi
    if [[ ! -x "$tools/cargo/bin/cargo-deb" ]]; then
        log "building cargo-deb $CARGO_DEB_VERSION into $tools/cargo (cargo install --locked, about 2 minutes)"
        cargo install --locked --root "$tools/cargo" cargo-deb --version "$CARGO_DEB_VERSION"
    fi
    "$tools/cargo/bin/cargo-deb" "$@"
}

run_nfpm() {
    if type -P nfpm >/dev/null; then
        command nfpm "$@"
        return
    fi
    if [[ ! -x "$tools/bin/nfpm" ]]; then
        command -v go >/dev/null 2>&1 || die "nFPM is missing and there is no Go toolchain to build it"
        log "building nFPM $NFPM_VERSION into $tools/bin (go install, about 2 minutes)"
        mkdir -p "$tools/bin"
        GOBIN="$tools/bin" GOFLAGS=-buildvcs=false go install "github.com/goreleaser/nfpm/v2/cmd/nfpm@$NFPM_VERSION"
    fi
    "$tools/bin/nfpm" "$@"
}

command -v objcopy >/dev/null 2>&1 || die "objcopy is missing (apt-get install binutils)"

# --- the binary ----------------------------------------------------------------------------------------------------
if [[ "${DTLE_PKG_NO_BUILD:-}" != 1 ]]; then
    log "cargo build --release -p dtle"
    cargo build --release -p dtle
fi
bin="$target_dir/release/dtle"
[[ -x "$bin" ]] || die "$bin is missing (cargo build --release -p dtle)"

version="${DTLE_PKG_VERSION:-$(cargo pkgid -p dtle | sed 's/.*[@#]//')}"
[[ "$version" =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "bad version '$version'"
[[ "$release" =~ ^[0-9][0-9A-Za-z.+~]*$ ]] || die "bad release '$release'"
if command -v dpkg >/dev/null 2>&1; then arch="$(dpkg --print-architecture)"; else
    case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
fi

# --- stage: the stripped binary, the package's configs and example jobs ------------------------------------------
rm -rf "$stage"
plugin_dir="$stage/usr/share/dtle/nomad-plugin"
mkdir -p "$plugin_dir" "$stage/usr/bin" "$stage/etc/dtle" "$stage/usr/share/dtle/scripts/examples" "$out"
objcopy --only-keep-debug --compress-debug-sections=zlib "$bin" "$stage/dtle.debug"
chmod 0644 "$stage/dtle.debug"
(cd "$stage" && objcopy --strip-all --add-gnu-debuglink=dtle.debug "$bin" "$plugin_dir/dtle")
chmod 0755 "$plugin_dir/dtle"
ln -s ../share/dtle/nomad-plugin/dtle "$stage/usr/bin/dtle"

# deploy/nomad.hcl and consul.hcl with the package's data and log directories. Each substitution must apply.
subst() { # file pattern replacement
    grep -q -- "$2" "$1" || die "deploy/$(basename "$1"): no line matches '$2' (update package.sh)"
    sed -i -e "s|$2|$3|" "$1"
}
cp deploy/nomad.hcl deploy/consul.hcl deploy/nats.conf "$stage/etc/dtle/"
n="$stage/etc/dtle/nomad.hcl"
subst "$n" '^data_dir\( *\)= "/var/lib/nomad"' 'data_dir\1= "/var/lib/dtle/nomad"'
subst "$n" '^log_level\( *\)= \(.*\)$' 'log_level\1= \2\nlog_file\1= "/var/log/dtle/nomad.log"'
subst "$n" '^\( *\)data_dir = "/var/lib/nomad"' '\1data_dir = "/var/lib/dtle"'
subst "$n" '^# The dtle binary must be' '# Installed by the dtle package (Nomad itself is not: tested 1.1.x-1.6.x).\n# The dtle binary must be'
c="$stage/etc/dtle/consul.hcl"
subst "$c" '^data_dir\( *\)= "/var/lib/consul"' 'data_dir\1= "/var/lib/dtle/consul"'
subst "$c" '^log_level = \(.*\)$' 'log_level = \1\nlog_file  = "/var/log/dtle/consul.log"'
if grep -n '/var/lib/nomad\|/var/lib/consul' "$n" "$c"; then die "a data path outside /var/lib/dtle is left"; fi
if [[ -n "${DTLE_PKG_CONFIG_NOTE:-}" ]]; then
    for f in "$stage"/etc/dtle/*; do printf '# %s\n' "$DTLE_PKG_CONFIG_NOTE" >>"$f"; done
fi

scripts="$stage/usr/share/dtle/scripts"
cp -R deploy/examples/. "$scripts/examples/"
cp deploy/examples/job1.hcl "$scripts/example.job.hcl"
cp deploy/examples/job1.json "$scripts/example.job.json"
cp deploy/examples/job_kafka.hcl "$scripts/example.job.kafka.hcl"
cp deploy/examples/job_kafka.json "$scripts/example.job.kafka.json"
find "$scripts" -type f -exec chmod 0644 {} +

# --- packages --------------------------------------------------------------------------------------------------------
deb="$out/dtle_${version}-${release}_${arch}.deb"
log "building $deb"
# (cargo-deb warns about every source outside target/release/: the staged files are meant to be.)
run_cargo_deb -p dtle --no-build --no-strip --deb-version "$version-$release" -o "$deb" 2>&1 |
    { grep -v "^warning: Only source paths starting with exactly 'target/release/'" || true; } >&2

log "building the .rpm"
rpm_out="$out/rpm.tmp"
rm -rf "$rpm_out"
mkdir -p "$rpm_out"
DTLE_PKG_VERSION="$version" DTLE_PKG_RELEASE="$release" DTLE_PKG_ARCH="$arch" DTLE_PKG_STAGE="$stage" \
    run_nfpm package -p rpm -f deploy/package/nfpm-rpm.yaml -t "$rpm_out/" >&2
rpm_file="$(ls "$rpm_out"/*.rpm)"
rpm_arch="${rpm_file%.rpm}"
rpm_arch="${rpm_arch##*.}"
rpm="$out/dtle-${version}-${release}.${rpm_arch}.rpm"
mv "$rpm_file" "$rpm"
rmdir "$rpm_out"

debug="$out/dtle-${version}-${release}.${rpm_arch}.debug"
install -m 0644 "$stage/dtle.debug" "$debug"

ls -l "$deb" "$rpm" "$debug" >&2
printf '%s\n' "$deb" "$rpm" "$debug"
