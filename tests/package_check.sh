#!/usr/bin/env bash
# Build the .deb and .rpm with deploy/package.sh and check them by installing them into scratch roots (never into
# this system): the layout, the config files, the maintainer scripts (dtle user, data and log directories, the
# relocated RPM's paths), `dtle --version` and `dtle validate` of the installed example job against the test
# MariaDB, `systemd-analyze verify` of the units, an upgrade to a higher version that keeps an edited config,
# and removal.
#
#   tests/package_check.sh        # the test MariaDB must be up (tests/mariadb.sh up), or DTLE_PKG_CHECK_NO_DB=1
#
# Installs rpm, rpm2cpio and cpio with apt-get when missing. Work files go to ${DTLE_TEST_DIR:-tests/.run}/package.
# Ends with "N passed, 0 failed"; exits non-zero at the first failed check.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
run_dir="${DTLE_TEST_DIR:-$repo/tests/.run}"
work="$run_dir/package"
start=$SECONDS
passed=0

say() { echo "package_check: $*"; }
ok() {
    passed=$((passed + 1))
    say "ok   $*"
}
fail() {
    say "FAIL $*"
    echo "$passed passed, 1 failed"
    exit 1
}
check() { # description, command...
    local what="$1"
    shift
    if "$@"; then ok "$what"; else fail "$what"; fi
}

# --- tools ---------------------------------------------------------------------------------------------------------
missing=()
command -v rpm >/dev/null || missing+=(rpm)
command -v rpm2cpio >/dev/null || missing+=(rpm2cpio)
command -v cpio >/dev/null || missing+=(cpio)
command -v objcopy >/dev/null || missing+=(binutils)
command -v useradd >/dev/null || missing+=(passwd)
if ((${#missing[@]})); then
    say "installing ${missing[*]}"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- build v1 and v2 (same binary, release 2, configs with one more comment line) ---------------------------------
rm -rf "$work"
mkdir -p "$work"
t0=$SECONDS
mapfile -t v1 < <(DTLE_PKG_OUT="$work/v1" deploy/package.sh)
t_build=$((SECONDS - t0))
t0=$SECONDS
mapfile -t v2 < <(DTLE_PKG_NO_BUILD=1 DTLE_PKG_RELEASE=2 DTLE_PKG_CONFIG_NOTE="dtle package v2" \
    DTLE_PKG_OUT="$work/v2" deploy/package.sh)
t_build2=$((SECONDS - t0))
deb1="${v1[0]}" rpm1="${v1[1]}" debug1="${v1[2]}" deb2="${v2[0]}" rpm2="${v2[1]}"
version="$(dpkg-deb -f "$deb1" Version)"
upstream="${version%-*}"
say "built $(basename "$deb1") $(basename "$rpm1") $(basename "$debug1") in ${t_build}s (v2 in ${t_build2}s)"

# --- the test job: the installed example with the test servers' connection fields ---------------------------------
host="${DTLE_TEST_HOST:-127.0.0.1}" src_port="${DTLE_TEST_SRC_PORT:-3307}" dst_port="${DTLE_TEST_DST_PORT:-3308}"
user="${DTLE_TEST_USER:-dtle}" password="${DTLE_TEST_PASSWORD:-dtle}"
validate_job() { # root-relative example job, installed dtle binary
    local job="$work/validate.$RANDOM.hcl"
    sed -e "s/Host *= *\"[^\"]*\"/Host     = \"$host\"/" -e "s/Port *= *3307/Port     = $src_port/" \
        -e "s/Port *= *3308/Port     = $dst_port/" -e "s/User *= *\"[^\"]*\"/User     = \"$user\"/" \
        -e "s/Password *= *\"[^\"]*\"/Password = \"$password\"/" "$1" >"$job"
    grep -q "Port *= $dst_port" "$job" || fail "the example job has no dest Port 3308 to rewrite"
    if [[ "${DTLE_PKG_CHECK_NO_DB:-}" == 1 ]]; then
        say "skip dtle validate (DTLE_PKG_CHECK_NO_DB=1)"
        return 0
    fi
    if ! (exec 3<>"/dev/tcp/$host/$src_port") 2>/dev/null; then
        fail "no MariaDB at $host:$src_port for dtle validate (tests/mariadb.sh up, or DTLE_PKG_CHECK_NO_DB=1)"
    fi
    "$2" validate "$job" >"$job.out" 2>&1 && grep -q 'configuration and prerequisites OK' "$job.out" || {
        cat "$job.out"
        return 1
    }
}
not_debug() { ! readelf -S "$1" | grep -q '\.debug_info'; }
has_debuglink() { readelf --string-dump=.gnu_debuglink "$1" 2>/dev/null | grep -q 'dtle\.debug'; }
owner_is_dtle() { # root, path
    local uid
    uid="$(awk -F: '$1 == "dtle" { print $3 }' "$1/etc/passwd")"
    [[ -n "$uid" && "$(stat -c %u "$2")" == "$uid" && "$(stat -c %a "$2")" == 750 ]]
}
new_root() { # a scratch root with the passwd files useradd --root needs
    rm -rf "$1"
    mkdir -p "$1/etc"
    echo 'root:x:0:0:root:/root:/bin/sh' >"$1/etc/passwd"
    echo 'root:x:0:' >"$1/etc/group"
    echo 'root:*:19000:0:99999:7:::' >"$1/etc/shadow"
    echo 'root:*::' >"$1/etc/gshadow"
    chmod 0640 "$1/etc/shadow" "$1/etc/gshadow"
}

# --- the .deb ------------------------------------------------------------------------------------------------------
say "--- .deb: $(basename "$deb1")"
check "deb: Package dtle, Recommends nats-server" \
    test "$(dpkg-deb -f "$deb1" Package)" = dtle -a "$(dpkg-deb -f "$deb1" Recommends)" = nats-server
dpkg-deb -e "$deb1" "$work/deb-control"
check "deb: conffiles are /etc/dtle/{nomad,consul}.hcl and nats.conf" \
    test "$(sort "$work/deb-control/conffiles" | tr '\n' ' ')" = "/etc/dtle/consul.hcl /etc/dtle/nats.conf /etc/dtle/nomad.hcl "

# dpkg itself installs into the scratch root; the maintainer scripts run outside it with DPKG_ROOT set
# (--force-script-chrootless), which they honour. --force-depends: the root has no libc6 package.
droot="$work/debroot"
new_root "$droot"
mkdir -p "$droot/var/lib/dpkg/info" "$droot/var/lib/dpkg/updates" "$droot/var/lib/dpkg/triggers"
touch "$droot/var/lib/dpkg/status" "$droot/var/lib/dpkg/available"
dpkg_root() { dpkg --root="$droot" --force-script-chrootless --force-depends --force-confold "$@" </dev/null; }
dpkg_root -i "$deb1" >"$work/dpkg-install.log" 2>&1 || {
    cat "$work/dpkg-install.log"
    fail "dpkg --root -i $(basename "$deb1")"
}
ok "deb: dpkg --root -i (maintainer scripts run chrootless with DPKG_ROOT)"
plugin="$droot/usr/share/dtle/nomad-plugin/dtle"
check "deb: the plugin is an executable, stripped, with a .gnu_debuglink" \
    eval 'test -x "$plugin" -a ! -L "$plugin" && not_debug "$plugin" && has_debuglink "$plugin"'
deb_plugin_copy="$work/deb-plugin"
cp "$plugin" "$deb_plugin_copy"
check "deb: /usr/bin/dtle links to the plugin" \
    test "$(readlink "$droot/usr/bin/dtle")" = ../share/dtle/nomad-plugin/dtle -a "$droot/usr/bin/dtle" -ef "$plugin"
for f in etc/dtle/nomad.hcl etc/dtle/consul.hcl etc/dtle/nats.conf usr/share/dtle/scripts/example.job.hcl \
    usr/share/dtle/scripts/example.job.json usr/share/dtle/scripts/examples/topologies/two_way.hcl \
    lib/systemd/system/dtle-nomad.service lib/systemd/system/dtle-consul.service \
    lib/systemd/system/dtle-nats.service usr/share/doc/dtle/README.md; do
    [[ -f "$droot/$f" ]] || fail "deb: /$f is missing"
done
ok "deb: configs, example jobs, units and README in place"
check "deb: nomad.hcl: plugin_dir, data under /var/lib/dtle, log under /var/log/dtle" \
    eval 'grep -q "^plugin_dir *= \"/usr/share/dtle/nomad-plugin\"" "$droot/etc/dtle/nomad.hcl" &&
        grep -q "^data_dir *= \"/var/lib/dtle/nomad\"" "$droot/etc/dtle/nomad.hcl" &&
        grep -q "^ *data_dir = \"/var/lib/dtle\"" "$droot/etc/dtle/nomad.hcl" &&
        grep -q "^log_file *= \"/var/log/dtle/nomad.log\"" "$droot/etc/dtle/nomad.hcl" &&
        grep -q "^data_dir *= \"/var/lib/dtle/consul\"" "$droot/etc/dtle/consul.hcl"'
check "deb: postinst made the dtle system user" grep -q '^dtle:x:[0-9]*:[0-9]*:dtle:/var/lib/dtle:' "$droot/etc/passwd"
check "deb: /var/lib/dtle and /var/log/dtle owned by dtle, 0750" \
    eval 'owner_is_dtle "$droot" "$droot/var/lib/dtle" && owner_is_dtle "$droot" "$droot/var/log/dtle"'
out="$("$droot/usr/bin/dtle" --version)"
check "deb: installed dtle --version prints $upstream ($out)" grep -q "$upstream" <<<"$out"
check "deb: installed dtle validate on the installed example.job.hcl (test MariaDB $host:$src_port → $dst_port)" \
    validate_job "$droot/usr/share/dtle/scripts/example.job.hcl" "$droot/usr/bin/dtle"

# systemd-analyze verify: the units as installed, with their Wants= partners beside them.
verify_units() { # unit files...
    local log="$work/verify.$RANDOM.log"
    if systemd-analyze verify "$@" >"$log" 2>&1; then return 0; fi
    if grep -q -i 'failed to \(initialize\|set up\|connect\)\|not booted\|Operation not permitted' "$log"; then
        say "skip systemd-analyze verify: it cannot run in this container:"
        sed 's/^/    /' "$log"
        return 0
    fi
    cat "$log"
    return 1
}
if command -v systemd-analyze >/dev/null; then
    check "deb: systemd-analyze verify dtle-{consul,nats,nomad}.service" \
        verify_units "$droot"/lib/systemd/system/dtle-{consul,nats,nomad}.service
else
    say "skip systemd-analyze verify: systemd-analyze is not installed"
fi

# Upgrade to release 2, whose configs differ (one more comment line): the edited nomad.hcl stays, v2's copy goes
# beside it as .dpkg-dist; the unedited consul.hcl is v2's.
echo '# edited by package_check' >>"$droot/etc/dtle/nomad.hcl"
dpkg_root -i "$deb2" >"$work/dpkg-upgrade.log" 2>&1 || {
    cat "$work/dpkg-upgrade.log"
    fail "dpkg --root -i $(basename "$deb2") (upgrade)"
}
check "deb: upgraded to $(dpkg-deb -f "$deb2" Version) without a prompt (--force-confold)" \
    test "$(dpkg-query --root="$droot" -W -f '${Version}' dtle)" = "$(dpkg-deb -f "$deb2" Version)"
check "deb: upgrade kept the edited nomad.hcl (v2's is nomad.hcl.dpkg-dist)" \
    eval 'grep -q "edited by package_check" "$droot/etc/dtle/nomad.hcl" &&
        grep -q "dtle package v2" "$droot/etc/dtle/nomad.hcl.dpkg-dist"'
check "deb: upgrade replaced the unedited consul.hcl with v2's" grep -q "dtle package v2" "$droot/etc/dtle/consul.hcl"
dpkg_root -P dtle >"$work/dpkg-purge.log" 2>&1 || {
    cat "$work/dpkg-purge.log"
    fail "dpkg --root -P dtle"
}
check "deb: purge removed the files and /var/log/dtle, kept /var/lib/dtle" \
    eval '! test -e "$plugin" -o -e "$droot/etc/dtle/nomad.hcl" -o -e "$droot/var/log/dtle" && test -d "$droot/var/lib/dtle"'

# --- the .rpm ------------------------------------------------------------------------------------------------------
say "--- .rpm: $(basename "$rpm1")"
rpmq() { rpm -qp "$@" 2>/dev/null; }
check "rpm: relocatable (Prefixes: /), Recommends nats-server" \
    test "$(rpmq --qf '%{PREFIXES}' "$rpm1")" = / -a "$(rpmq --recommends "$rpm1")" = nats-server
check "rpm: /etc/dtle/{nomad,consul}.hcl and nats.conf are %config(noreplace)" \
    test "$(rpmq --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm1" | grep '^cn ' | sort | tr '\n' ' ')" = \
    "cn /etc/dtle/consul.hcl cn /etc/dtle/nats.conf cn /etc/dtle/nomad.hcl "
rpm_list="$(rpmq -l "$rpm1")"
for f in /usr/share/dtle/nomad-plugin/dtle /usr/bin/dtle /etc/dtle/nomad.hcl /usr/share/dtle/scripts/example.job.hcl \
    /usr/lib/systemd/system/dtle-nomad.service /usr/lib/systemd/system/dtle-consul.service \
    /usr/lib/systemd/system/dtle-nats.service; do
    grep -qx "$f" <<<"$rpm_list" || fail "rpm -qlp: $f is missing"
done
ok "rpm -qlp: plugin, /usr/bin/dtle, configs, example job, units"
x="$work/rpm-extract"
mkdir -p "$x"
(cd "$x" && rpm2cpio "$rpm1" | cpio -idm --quiet)
check "rpm2cpio | cpio: the same stripped plugin as the .deb, /usr/bin/dtle a relative link" \
    eval 'cmp -s "$x/usr/share/dtle/nomad-plugin/dtle" "$deb_plugin_copy" &&
        test "$(readlink "$x/usr/bin/dtle")" = ../share/dtle/nomad-plugin/dtle'

# rpm --root with --prefix=/data/dtle. rpm runs scriptlets chrooted into the root, which has no shell: install
# with --noscripts, then run the package's own %post the way rpm would (RPM_INSTALL_PREFIX set), outside the root.
rroot="$work/rpmroot"
new_root "$rroot"
rpm_root() { rpm --root "$rroot" --dbpath /var/lib/rpm --nodeps --noscripts "$@" 2>&1 | grep -v 'use Alien\|know what you are doing' || true; }
rpm --root "$rroot" --dbpath /var/lib/rpm --initdb
rpm_root -ivh --prefix=/data/dtle "$rpm1" >"$work/rpm-install.log"
check "rpm: rpm --root --prefix=/data/dtle -ivh installed $(basename "$rpm1")" \
    eval 'rpm --root "$rroot" --dbpath /var/lib/rpm -q dtle >/dev/null 2>&1'
run_scriptlet() { # tag, argument
    rpmq --qf "%{$1}" "$2" >"$work/$1.sh"
    DPKG_ROOT="$rroot" RPM_INSTALL_PREFIX=/data/dtle sh "$work/$1.sh" "$3" >"$work/$1.log" 2>&1 || {
        cat "$work/$1.log"
        return 1
    }
}
check "rpm: %post with RPM_INSTALL_PREFIX=/data/dtle" run_scriptlet POSTIN "$rpm1" 1
p="$rroot/data/dtle"
check "rpm: relocated files under /data/dtle" \
    eval 'test -x "$p/usr/share/dtle/nomad-plugin/dtle" -a -f "$p/etc/dtle/nomad.hcl" -a -f "$p/usr/share/dtle/scripts/example.job.hcl" -a ! -e "$rroot/usr/share/dtle"'
check "rpm: %post wrote the prefix into nomad.hcl and consul.hcl" \
    eval 'grep -q "^plugin_dir *= \"/data/dtle/usr/share/dtle/nomad-plugin\"" "$p/etc/dtle/nomad.hcl" &&
        grep -q "^ *data_dir = \"/data/dtle/var/lib/dtle\"" "$p/etc/dtle/nomad.hcl" &&
        grep -q "^data_dir *= \"/data/dtle/var/lib/dtle/consul\"" "$p/etc/dtle/consul.hcl"'
check "rpm: %post made the dtle user and /data/dtle/var/{lib,log}/dtle" \
    eval 'owner_is_dtle "$rroot" "$p/var/lib/dtle" && owner_is_dtle "$rroot" "$p/var/log/dtle"'
check "rpm: %post generated units for the prefix in /etc/systemd/system" \
    eval 'grep -q "^ExecStart=/usr/bin/env nomad agent -config=/data/dtle/etc/dtle/nomad.hcl" "$rroot/etc/systemd/system/dtle-nomad.service" &&
        grep -q "^Environment=PATH=/data/dtle/usr/bin:" "$rroot/etc/systemd/system/dtle-consul.service" &&
        test -f "$rroot/etc/systemd/system/dtle-nats.service"'
check "rpm: %post linked /usr/bin/dtle to the relocated plugin" \
    test "$(readlink "$rroot/usr/bin/dtle")" = /data/dtle/usr/share/dtle/nomad-plugin/dtle
out="$("$p/usr/bin/dtle" --version)"
check "rpm: installed dtle --version prints $upstream" grep -q "$upstream" <<<"$out"
check "rpm: installed dtle validate on the installed example.job.hcl" \
    validate_job "$p/usr/share/dtle/scripts/example.job.hcl" "$p/usr/bin/dtle"
if command -v systemd-analyze >/dev/null; then
    check "rpm: systemd-analyze verify the packaged and the generated units" \
        eval 'verify_units "$p"/usr/lib/systemd/system/dtle-{consul,nats,nomad}.service &&
            verify_units "$rroot"/etc/systemd/system/dtle-{consul,nats,nomad}.service'
fi

# Upgrade: the edited nomad.hcl stays, v2's copy goes beside it as .rpmnew.
echo '# edited by package_check' >>"$p/etc/dtle/nomad.hcl"
rpm_root -Uvh --prefix=/data/dtle "$rpm2" >"$work/rpm-upgrade.log"
check "rpm: upgraded to $(rpmq --qf '%{VERSION}-%{RELEASE}' "$rpm2")" \
    test "$(rpm --root "$rroot" --dbpath /var/lib/rpm -q --qf '%{VERSION}-%{RELEASE}' dtle 2>/dev/null)" = "$(rpmq --qf '%{VERSION}-%{RELEASE}' "$rpm2")"
check "rpm: %post of the upgrade" run_scriptlet POSTIN "$rpm2" 2
check "rpm: upgrade kept the edited nomad.hcl (v2's is nomad.hcl.rpmnew)" \
    eval 'grep -q "edited by package_check" "$p/etc/dtle/nomad.hcl" && grep -q "dtle package v2" "$p/etc/dtle/nomad.hcl.rpmnew" &&
        grep -q "^plugin_dir *= \"/data/dtle/usr/share/dtle/nomad-plugin\"" "$p/etc/dtle/nomad.hcl"'
check "rpm: %preun of the erase" run_scriptlet PREUN "$rpm2" 0
rpm_root -e dtle >"$work/rpm-erase.log"
check "rpm: %postun of the erase" run_scriptlet POSTUN "$rpm2" 0
check "rpm: erase removed the files, the generated units and the /usr/bin/dtle link" \
    eval '! test -e "$p/usr/share/dtle" -o -e "$rroot/etc/systemd/system/dtle-nomad.service" -o -L "$rroot/usr/bin/dtle"'

# --- debug info ----------------------------------------------------------------------------------------------------
build_id() { readelf -n "$1" 2>/dev/null | awk '/Build ID/ { print $3 }'; }
check "$(basename "$debug1"): debug info with the packaged binary's build id" \
    eval 'readelf -S "$debug1" 2>/dev/null | grep -q "\.debug_info" && test -n "$(build_id "$debug1")" &&
        test "$(build_id "$debug1")" = "$(build_id "$deb_plugin_copy")"'

say "sizes: deb $(du -h "$deb1" | cut -f1), rpm $(du -h "$rpm1" | cut -f1), plugin $(du -h "$x/usr/share/dtle/nomad-plugin/dtle" | cut -f1), debug $(du -h "$debug1" | cut -f1)"
say "time: packages ${t_build}s + ${t_build2}s, whole check $((SECONDS - start))s"
echo "$passed passed, 0 failed"
