#!/usr/bin/env bash
# install.sh — set up appliance for development, or install, upgrade and remove it on a device.
#
#   ./install.sh --dev                  .venv with the package (editable) and test tools, plus the Debian
#                                       packages the tests start for real (slapd, ffmpeg, nginx, chromium...).
#   ./install.sh --device [OPTIONS]     as root on Debian 12 (x86_64 or aarch64): system user, code in
#                                       /opt/appliance, config in /etc/appliance, data in /var/lib/appliance,
#                                       systemd units installed and enabled. Re-running with a newer tree
#                                       upgrades (database backed up, rolled back if the new one is not ready).
#       --wheelhouse DIR                install with no network: wheels and .deb files from DIR
#       --content DIR                   content root (default /var/lib/appliance/content-cache)
#       --port N                        HTTP port written into a new config (default 8080; the content
#                                       origin uses N+1)
#       --allow-network CIDR            limit the unit's IP filter to loopback, the LAN and these networks
#                                       (repeatable; default `any`: upstreams on the internet are reached,
#                                       and the daemon's own egress policy still vets every request)
#       --start                         start (or restart) the service and wait until /readyz answers
#       --firstboot                     enable the first-boot unit (device images: admin shown on the console)
#   ./install.sh --check [--device]     say what --device would change; change nothing
#   ./install.sh --uninstall            stop and remove the service and code; keep config and data
#   ./install.sh --purge [--yes]        --uninstall, then delete config, data and content (asks first)
#   ./install.sh --build-wheelhouse DIR [--arch x86_64,aarch64]
#                                       on a connected machine: every wheel (and build requirement) for the
#                                       given architectures, plus the runtime Debian packages as .deb files
#
# Idempotent: a second run changes nothing (it says so).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode=""
start_service=0
check_only=0
assume_yes=0
firstboot=0
wheelhouse=""
content_dir=""
http_port=""
wheelhouse_out=""
arches="x86_64,aarch64"
allow_networks=()

usage() { sed -n '2,25p' "$0"; }
die() { echo "install.sh: $*" >&2; exit 1; }
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (try --help)"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --dev) mode=dev ;;
    --device) mode=device ;;
    --uninstall) mode=uninstall ;;
    --purge) mode=purge ;;
    --check) check_only=1 ;;
    --start) start_service=1 ;;
    --yes) assume_yes=1 ;;
    --firstboot) firstboot=1 ;;
    --wheelhouse) need_value "$@"; wheelhouse="$2"; shift ;;
    --content) need_value "$@"; content_dir="$2"; shift ;;
    --port) need_value "$@"; http_port="$2"; shift ;;
    --allow-network) need_value "$@"; allow_networks+=("$2"); shift ;;
    --build-wheelhouse) need_value "$@"; mode=build-wheelhouse; wheelhouse_out="$2"; shift ;;
    --arch) need_value "$@"; arches="$2"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
  shift
done
if [ -z "$mode" ] && [ "$check_only" -eq 1 ]; then mode=device; fi
[ -n "$mode" ] || { echo "install.sh: say --dev, --device, --uninstall, --purge or --build-wheelhouse DIR (try --help)" >&2; exit 2; }

say() { printf '==> %s\n' "$*"; }

# Debian packages: runtime needs for a device; tests and benchmarks add real peers to test against.
# procps gives /bin/kill, which the unit's ExecReload uses (minbase systems lack it).
runtime_pkgs=(python3 python3-venv ca-certificates ffmpeg xmlsec1 sqlite3 procps)
dev_pkgs=(slapd ldap-utils kiwix-tools wrk nginx-light chromium python3.11-doc postgresql-doc-15 git
  debootstrap systemd-container qemu-system-x86 qemu-utils grub-pc-bin grub2-common parted fdisk)

missing_pkgs() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || printf '%s\n' "$pkg"
  done
}

apt_install() {
  local missing
  mapfile -t missing < <(missing_pkgs "$@")
  if [ "${#missing[@]}" -eq 0 ]; then
    say "Debian packages already present"
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then SUDO=sudo; else
      echo "install.sh: need root to install: ${missing[*]}" >&2; exit 1
    fi
  else
    SUDO=""
  fi
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # slapd asks questions; nothing here should prompt. The packaged slapd/nginx services are not used
  # by the tests (they start their own on free loopback ports).
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

pick_python() {
  local py
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null && "$py" -c 'import sys, venv; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$py"; return
    fi
  done
  echo "install.sh: Python >= 3.11 with venv is required" >&2; exit 1
}

# Rebuild the venv's packages only when what they come from changed.
stamp_of() { sha256sum "$here/pyproject.toml" | cut -d' ' -f1; }

install_venv() {  # $1 = venv dir, $2 = pip target (editable dev or plain)
  local venv="$1" target="$2" python stamp
  python="$(pick_python)"
  if [ ! -x "$venv/bin/python" ]; then
    say "creating $venv with $python"
    "$python" -m venv "$venv"
  fi
  stamp="$(stamp_of)-$target"
  if [ -f "$venv/.install-stamp" ] && [ "$(cat "$venv/.install-stamp")" = "$stamp" ]; then
    say "Python packages already installed in $venv"
    return
  fi
  say "installing Python packages into $venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  if [ "$target" = dev ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -e "$here[test]"
  else
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$here"
  fi
  printf '%s' "$stamp" > "$venv/.install-stamp"
}

if [ "$mode" = dev ]; then
  apt_install "${runtime_pkgs[@]}" "${dev_pkgs[@]}"
  install_venv "$here/.venv" dev
  say "ready: .venv/bin/appliance serve --dev   |   .venv/bin/pytest"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------------
# Everything below is the device path (and building the offline wheelhouse for it).

prefix=/opt/appliance
etc=/etc/appliance
state=/var/lib/appliance
unit_dir=/etc/systemd/system
dropin_dir="$unit_dir/appliance.service.d"
install_conf="$etc/install.conf"
units=(appliance.service appliance-firstboot.service appliance-backup.service appliance-backup.timer)
min_free_mb=1024          # code + a database backup + room to migrate
ready_timeout_s="${APPLIANCE_READY_TIMEOUT:-180}"
# With --allow-network the unit's IPAddressDeny=any lets through only loopback, the LAN and the listed
# networks. Without it the filter stays open (`any`): a facility's LMS and video sites are usually on the
# internet, and a default that silently breaks sync could only be fixed by re-running this script.
lan_networks=(localhost link-local multicast 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 fc00::/7)

changes=0
units_changed=0
# Run a change, or with --check only say what it would be.
act() {  # $1 = description, rest = command
  local what="$1"; shift
  changes=$((changes + 1))
  if [ "$check_only" -eq 1 ]; then
    printf 'would: %s\n' "$what"
    return 0
  fi
  say "$what"
  "$@"
}

have_systemd() { [ -d /run/systemd/system ]; }  # booted with systemd (not a chroot or image build)

machine_arch() {
  local arch
  arch="$(uname -m)"
  case "$arch" in
    x86_64|aarch64) printf '%s' "$arch" ;;
    armv7l|armv7*|armhf|armv6*) die "armv7/32-bit ARM is not supported (some wheels, e.g. libzim, exist only for 64-bit); use a 64-bit OS (aarch64) on this board" ;;
    *) die "unsupported architecture $arch (x86_64 and aarch64 are supported)" ;;
  esac
}

deb_arch_of() { case "$1" in x86_64) echo amd64 ;; aarch64) echo arm64 ;; esac; }

require_root() { [ "$(id -u)" -eq 0 ] || die "$1 must run as root (try: sudo $0 $*)"; }

require_debian12() {
  local id="" version=""
  if [ -r /etc/os-release ]; then
    id="$(. /etc/os-release && echo "${ID:-}")"
    version="$(. /etc/os-release && echo "${VERSION_ID:-}")"
  fi
  [ "$id" = debian ] && [ "$version" = 12 ] || die "this is ${id:-an unknown system} ${version}; the device install supports Debian 12 (bookworm) only"
}

free_mb() {  # free MiB on the file system holding $1 (or its nearest existing parent)
  local path="$1"
  while [ ! -e "$path" ]; do path="$(dirname "$path")"; done
  df -Pm "$path" | awk 'NR==2 {print $4}'
}

require_disk() {
  local path free
  for path in "$prefix" "$state"; do
    free="$(free_mb "$path")"
    [ "$free" -ge "$min_free_mb" ] || die "not enough disk space for $path: ${free} MiB free, need ${min_free_mb} MiB"
  done
}

port_in_use() {  # something accepts connections on 127.0.0.1:$1
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# Persisted install choices, so an upgrade run without flags keeps them.
load_install_conf() {
  local saved_port="" saved_content="" saved_allow=""
  if [ -r "$install_conf" ]; then
    saved_port="$(sed -n 's/^PORT=//p' "$install_conf")"
    saved_content="$(sed -n 's/^CONTENT=//p' "$install_conf")"
    saved_allow="$(sed -n 's/^ALLOW_NETWORKS=//p' "$install_conf")"
  fi
  http_port="${http_port:-${saved_port:-8080}}"
  content_dir="${content_dir:-${saved_content:-$state/content-cache}}"
  if [ "${#allow_networks[@]}" -eq 0 ] && [ -n "$saved_allow" ]; then
    read -r -a allow_networks <<< "$saved_allow"
  fi
  [ "${#allow_networks[@]}" -gt 0 ] || allow_networks=(any)
  [[ "$http_port" =~ ^[0-9]+$ ]] && [ "$http_port" -ge 1 ] && [ "$http_port" -le 65535 ] || die "--port must be 1..65535"
  case "$content_dir" in /*) ;; *) die "--content must be an absolute path" ;; esac
  local net
  for net in "${allow_networks[@]}"; do
    [[ "$net" =~ ^(any|[0-9a-fA-F.:]+(/[0-9]{1,3})?)$ ]] || die "--allow-network $net is not a CIDR or 'any'"
  done
}

release_id() {  # a content hash of what gets installed: the package source and its metadata
  local version hash
  version="$(sed -n 's/^version = "\(.*\)"/\1/p' "$here/pyproject.toml" | head -1)"
  hash="$(cd "$here" && find appliance pyproject.toml -type f ! -name '*.pyc' ! -path '*/__pycache__/*' -print0 \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-12)"
  printf '%s-%s' "$version" "$hash"
}

wheel_dir() { printf '%s/wheels' "$wheelhouse"; }

# ----- offline Debian packages: a local apt repository made from the wheelhouse's .deb files -----
deb_repo_dir() { printf '%s/debs/%s' "$wheelhouse" "$(deb_arch_of "$(machine_arch)")"; }

apt_install_offline() {
  local missing repo tmp
  mapfile -t missing < <(missing_pkgs "${runtime_pkgs[@]}")
  if [ "${#missing[@]}" -eq 0 ]; then
    say "Debian packages already present"
    return
  fi
  repo="$(deb_repo_dir)"
  [ -f "$repo/Packages" ] || die "$repo/Packages not found: build the wheelhouse with --build-wheelhouse on a connected Debian 12 machine of this architecture"
  if [ "$check_only" -eq 1 ]; then
    changes=$((changes + 1)); printf 'would: install Debian packages from %s: %s\n' "$repo" "${missing[*]}"; return
  fi
  say "installing Debian packages from the wheelhouse: ${missing[*]}"
  tmp="$(mktemp -d)"
  # Only the wheelhouse as a source, with lists of its own: nothing is fetched, the device's apt
  # configuration and lists stay untouched.
  printf 'deb [trusted=yes] file:%s ./\n' "$repo" > "$tmp/sources.list"
  mkdir -p "$tmp/lists/partial" "$tmp/archives/partial"
  local opts=(-o "Dir::Etc::SourceList=$tmp/sources.list" -o Dir::Etc::SourceParts=/dev/null
    -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache::Archives=$tmp/archives" -o Dir::Cache::pkgcache=
    -o Dir::Cache::srcpkgcache= -o APT::Sandbox::User=root -o Acquire::Languages=none)
  if ! apt-get "${opts[@]}" update -qq >"$tmp/log" 2>&1 \
    || ! DEBIAN_FRONTEND=noninteractive apt-get "${opts[@]}" install -y -qq --no-install-recommends "${missing[@]}" >>"$tmp/log" 2>&1; then
    cat "$tmp/log" >&2; rm -rf "$tmp"; die "installing Debian packages from $repo failed (see above)"
  fi
  rm -rf "$tmp"
}

# ----- the release: a venv per content hash, /opt/appliance/venv -> the current one -----
build_release() {  # $1 = release dir
  local dir="$1" python pipopts=(--quiet --disable-pip-version-check --no-input)
  python="$(pick_python)"
  rm -rf "$dir"
  "$python" -m venv "$dir"
  if [ -n "$wheelhouse" ]; then
    # --no-index: nothing from the network; the build requirements (setuptools, wheel) come from the
    # wheelhouse too, because the appliance itself is built from this tree.
    pipopts+=(--no-index --find-links "$(wheel_dir)")
  fi
  "$dir/bin/python" -m pip install "${pipopts[@]}" --upgrade pip \
    || die "could not upgrade pip in $dir${wheelhouse:+ from the wheelhouse}"
  # Built from a copy, so the tree (perhaps read-only, perhaps a checkout) gets no build/ or egg-info.
  local src
  src="$(mktemp -d)"
  cp -r "$here/pyproject.toml" "$here/README.md" "$here/LICENSE" "$here/appliance" "$src/"
  find "$src" -name __pycache__ -prune -exec rm -rf {} +
  "$dir/bin/python" -m pip install "${pipopts[@]}" "$src" \
    || { rm -rf "$src"; die "could not install the appliance into $dir${wheelhouse:+ from the wheelhouse (built for another version?)}"; }
  rm -rf "$src"
  install -m 0644 "$here/README.md" "$dir/README.md"
  printf '%s\n' "$(basename "$dir")" > "$dir/.release"
}

current_release() { [ -L "$prefix/venv" ] && basename "$(readlink "$prefix/venv")" || true; }

switch_to() {  # $1 = release id: atomically repoint /opt/appliance/venv
  ln -sfn "releases/$1" "$prefix/venv.new"
  mv -T "$prefix/venv.new" "$prefix/venv"
}

as_appliance() {  # run a command as the service user (files it creates are owned by appliance)
  setpriv --reuid=appliance --regid=appliance --init-groups -- "$@"
}

wait_ready() {  # poll /readyz until 200; fail early when the unit fails
  local deadline=$((SECONDS + ready_timeout_s))
  while [ "$SECONDS" -lt "$deadline" ]; do
    if "$prefix/venv/bin/python" - "$http_port" <<'EOF' 2>/dev/null; then return 0; fi
import sys, urllib.request
with urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/readyz", timeout=2) as r:
    sys.exit(0 if r.status == 200 else 1)
EOF
    if systemctl is-failed --quiet appliance.service; then return 1; fi
    sleep 1
  done
  return 1
}

backup_database() {  # $1 = target file; a consistent online copy (SQLite backup API)
  local db="$state/appliance.db"
  [ -f "$db" ] || return 0
  as_appliance "$prefix/venv/bin/python" - "$db" "$1" <<'EOF'
import sqlite3, sys
src, dst = sqlite3.connect(sys.argv[1]), sqlite3.connect(sys.argv[2])
with dst:
    src.backup(dst)
dst.close(); src.close()
EOF
}

restore_database() {  # $1 = backup file written by backup_database
  local db="$state/appliance.db"
  [ -f "$1" ] || return 0
  rm -f "$db-wal" "$db-shm"
  install -m 0600 -o appliance -g appliance "$1" "$db.restore"
  mv -f "$db.restore" "$db"
}

write_config() {
  local token
  token="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  umask 077
  cat > "$etc/appliance.toml.new" <<EOF
# appliance configuration; every key is documented in README.md ("Configuration reference").
# Written by install.sh --device; it is never overwritten by a later run.
[http]
host = "0.0.0.0"
port = $http_port

[paths]
data_dir = "$state"
content_root = "$content_dir"

[health]
# Generated for this device: /metrics needs "Authorization: Bearer <token>".
metrics_token = "$token"
EOF
  chown root:appliance "$etc/appliance.toml.new"
  chmod 0640 "$etc/appliance.toml.new"
  mv -f "$etc/appliance.toml.new" "$etc/appliance.toml"
  umask 022
}

dropin_text() {  # the unit drop-in made from this device's choices
  local allow=("${lan_networks[@]}" "${allow_networks[@]}")
  printf '# Written by install.sh --device from %s; edit that file or re-run with --allow-network/--content.\n' "$install_conf"
  printf '[Service]\n'
  if printf '%s\n' "${allow_networks[@]}" | grep -qx any; then
    printf 'IPAddressDeny=\n'
  else
    printf 'IPAddressAllow=%s\n' "${allow[*]}"
  fi
  case "$content_dir/" in
    "$state"/*) ;;
    *) printf 'ReadWritePaths=%s\n' "$content_dir" ;;
  esac
}

install_conf_text() {
  printf '# install.sh --device choices, reused by later runs (upgrades).\n'
  printf 'PORT=%s\nCONTENT=%s\nALLOW_NETWORKS=%s\n' "$http_port" "$content_dir" "${allow_networks[*]}"
}

put_file() {  # $1 = destination, $2 = mode, stdin = content; only when it differs
  local dst="$1" mode="$2" tmp
  tmp="$(mktemp)"
  cat > "$tmp"
  if cmp -s "$tmp" "$dst" 2>/dev/null && [ "$(stat -c %a "$dst")" = "${mode#0}" ]; then
    rm -f "$tmp"; return 0
  fi
  if [ "$check_only" -eq 1 ]; then
    changes=$((changes + 1)); printf 'would: write %s\n' "$dst"; rm -f "$tmp"; return 0
  fi
  say "writing $dst"
  changes=$((changes + 1))
  install -D -m "$mode" "$tmp" "$dst"
  rm -f "$tmp"
  units_changed=1
}

fix_ownership() {  # every file the daemon uses is the daemon's, whoever created it
  local dir wrong
  for dir in "$state" "$content_dir"; do
    [ -d "$dir" ] || continue
    wrong="$(find "$dir" \( ! -user appliance -o ! -group appliance \) -print -quit 2>/dev/null || true)"
    [ -z "$wrong" ] || act "giving $dir back to the appliance user (e.g. $wrong)" chown -R appliance:appliance "$dir"
  done
}

ensure_dir() {  # $1 = path, $2 = mode, $3 = owner
  local path="$1" mode="$2" owner="$3"
  if [ -d "$path" ] && [ "$(stat -c %a "$path")" = "${mode#0}" ] && [ "$(stat -c %U:%G "$path")" = "$owner" ]; then
    return 0
  fi
  act "folder $path ($mode $owner)" install -d -m "$mode" -o "${owner%%:*}" -g "${owner##*:}" "$path"
}

# ----- the device install / upgrade -----
device() {
  require_root --device
  require_debian12
  machine_arch >/dev/null
  load_install_conf
  [ -z "$wheelhouse" ] || [ -d "$(wheel_dir)" ] || die "--wheelhouse $wheelhouse has no wheels/ folder (make one with --build-wheelhouse)"
  [ -z "$wheelhouse" ] || wheelhouse="$(cd "$wheelhouse" && pwd)"
  require_disk
  # A fresh install writes a config for the port; the app listens there and its content origin (archive
  # pages) on the next one. Checked before anything changes.
  if [ "$check_only" -eq 0 ] && [ ! -f "$etc/appliance.toml" ] \
      && { port_in_use "$http_port" || port_in_use $((http_port + 1)); }; then
    die "port $http_port or $((http_port + 1)) (content origin) is in use on this machine; choose another with --port N"
  fi
  command -v systemctl >/dev/null || [ "$check_only" -eq 1 ] \
    || die "systemctl not found: the appliance runs as a systemd service (apt-get install systemd-sysv)"

  if [ -n "$wheelhouse" ]; then apt_install_offline; elif [ "$check_only" -eq 1 ]; then
    local missing; mapfile -t missing < <(missing_pkgs "${runtime_pkgs[@]}")
    [ "${#missing[@]}" -eq 0 ] || { changes=$((changes + 1)); printf 'would: install Debian packages: %s\n' "${missing[*]}"; }
  else apt_install "${runtime_pkgs[@]}"; fi
  [ "$check_only" -eq 1 ] || pick_python >/dev/null

  if ! id appliance >/dev/null 2>&1; then
    act "creating system user appliance" useradd --system --user-group --home-dir "$state" --no-create-home \
      --shell /usr/sbin/nologin appliance
  fi
  if [ "$check_only" -eq 1 ] && ! id appliance >/dev/null 2>&1; then
    printf 'would: create %s, %s, %s and install the release\n' "$prefix" "$etc" "$state"
    printf '%d change(s) would be made\n' "$((changes + 1))"; return 0
  fi
  ensure_dir "$prefix" 0755 root:root
  ensure_dir "$prefix/releases" 0755 root:root
  ensure_dir "$etc" 0750 root:appliance
  ensure_dir "$state" 0700 appliance:appliance
  ensure_dir "$state/backups" 0700 appliance:appliance
  ensure_dir "$content_dir" 0755 appliance:appliance
  ensure_dir "$content_dir/zim" 0755 appliance:appliance
  ensure_dir "$content_dir/videos" 0755 appliance:appliance

  if [ ! -f "$etc/appliance.toml" ]; then
    act "writing $etc/appliance.toml (0640 root:appliance, generated secrets)" write_config
  fi
  install_conf_text | put_file "$install_conf" 0644
  fix_ownership

  units_changed=0
  local unit
  for unit in "${units[@]}"; do
    put_file "$unit_dir/$unit" 0644 < "$here/systemd/$unit"
  done
  dropin_text | put_file "$dropin_dir/50-install.conf" 0644
  put_file "$prefix/libexec/firstboot" 0755 < "$here/systemd/firstboot"

  local new old
  new="$(release_id)"
  old="$(current_release)"
  if [ "$new" = "$old" ] && [ -x "$prefix/venv/bin/appliance" ]; then
    :
  elif [ "$check_only" -eq 1 ]; then
    changes=$((changes + 1))
    if [ -n "$old" ]; then printf 'would: upgrade %s -> %s (database backed up; rolled back if not ready)\n' "$old" "$new"
    else printf 'would: install release %s into %s/releases\n' "$new" "$prefix"; fi
  else
    changes=$((changes + 1))
    install_release "$new" "$old"
  fi

  if [ "$check_only" -eq 0 ] && have_systemd && [ "$units_changed" -eq 1 ]; then systemctl daemon-reload; fi
  enable_units
  if [ "$check_only" -eq 1 ]; then
    if [ "$changes" -eq 0 ]; then echo "nothing would change"; else printf '%d change(s) would be made\n' "$changes"; fi
    return 0
  fi
  [ "$changes" -gt 0 ] || say "nothing changed: release $(current_release) is installed and configured"
  if [ "$start_service" -eq 1 ]; then
    start_and_wait || die "the service did not become ready; see: journalctl -u appliance -n 50"
    say "appliance is ready: http://$(primary_ip):$http_port/"
  fi
  say "create the first admin: $prefix/venv/bin/appliance user add --username NAME --role system_admin --password-stdin"
  [ "$start_service" -eq 1 ] || say "start it: systemctl start appliance   (check: $prefix/venv/bin/appliance doctor)"
}

enable_units() {
  local unit wanted=(appliance.service appliance-backup.timer)
  [ "$firstboot" -eq 0 ] || wanted+=(appliance-firstboot.service)
  for unit in "${wanted[@]}"; do
    # Works booted and in a chroot (it only makes the symlinks); fails loudly, never silently.
    if [ "$(systemctl is-enabled "$unit" 2>/dev/null || true)" != enabled ]; then
      act "enabling $unit" systemctl enable --quiet "$unit"
    fi
  done
}

start_and_wait() {
  have_systemd || die "--start needs a running systemd (this looks like a chroot or container build)"
  say "starting appliance.service and waiting for /readyz (up to ${ready_timeout_s}s)"
  systemctl restart appliance.service || true
  wait_ready
}

primary_ip() {
  "$prefix/venv/bin/python" - <<'EOF' 2>/dev/null || echo 127.0.0.1
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.connect(("192.0.2.1", 9))  # no packet is sent; this only picks the outgoing interface
print(s.getsockname()[0])
EOF
}

install_release() {  # $1 = new id, $2 = current id (may be empty)
  local new="$1" old="$2" dir="$prefix/releases/$1" was_active=0 backup=""
  say "building release $new in $dir"
  build_release "$dir"
  if [ -z "$old" ]; then
    switch_to "$new"
    say "migrating the database"
    as_appliance "$prefix/venv/bin/appliance" migrate --config "$etc/appliance.toml" >/dev/null \
      || die "database migration failed"
    return 0
  fi
  # An upgrade: stop, back up, switch, migrate, start, wait; any failure puts the old release and the
  # database backup back.
  say "upgrading $old -> $new"
  if have_systemd && systemctl is-active --quiet appliance.service; then was_active=1; systemctl stop appliance.service; fi
  backup="$state/backups/pre-upgrade-$old-$(date -u +%Y%m%dT%H%M%S).db"
  backup_database "$backup" || die "could not back up the database before upgrading; nothing changed"
  ln -sfn "releases/$old" "$prefix/previous"
  switch_to "$new"
  local ok=1
  as_appliance "$prefix/venv/bin/appliance" migrate --config "$etc/appliance.toml" >/dev/null || ok=0
  if [ "$ok" -eq 1 ] && have_systemd && { [ "$was_active" -eq 1 ] || [ "$start_service" -eq 1 ]; }; then
    systemctl start appliance.service || true
    wait_ready || ok=0
  fi
  if [ "$ok" -eq 0 ]; then
    echo "install.sh: release $new did not become ready; rolling back to $old" >&2
    have_systemd && systemctl stop appliance.service || true
    restore_database "$backup"
    switch_to "$old"
    if have_systemd && [ "$was_active" -eq 1 ]; then
      systemctl reset-failed appliance.service 2>/dev/null || true
      systemctl start appliance.service || true
      wait_ready || echo "install.sh: the previous release did not become ready either" >&2
    fi
    rm -rf "$dir"
    die "upgrade to $new failed and was rolled back to $old (database restored from $backup)"
  fi
  # Keep the new and the previous release only.
  local release
  for release in "$prefix"/releases/*; do
    case "$(basename "$release")" in "$new"|"$old") ;; *) rm -rf "$release" ;; esac
  done
  say "upgraded to $new (previous release kept in $prefix/releases/$old)"
}

# ----- removal -----
uninstall() {
  require_root --uninstall
  local unit present=0
  for unit in "${units[@]}"; do
    [ -e "$unit_dir/$unit" ] || continue
    present=1
    if [ "$check_only" -eq 0 ]; then
      if have_systemd; then systemctl disable --now --quiet "$unit" 2>/dev/null || true
      else systemctl disable --quiet "$unit" 2>/dev/null || true; fi
    fi
    act "removing $unit_dir/$unit" rm -f "$unit_dir/$unit"
  done
  [ ! -d "$dropin_dir" ] || act "removing $dropin_dir" rm -rf "$dropin_dir"
  [ ! -d "$prefix" ] || act "removing $prefix" rm -rf "$prefix"
  [ "$check_only" -eq 1 ] || { [ "$present" -eq 0 ] || ! have_systemd || systemctl daemon-reload; }
  [ "$changes" -gt 0 ] || say "nothing to remove: the appliance is not installed"
}

purge() {
  require_root --purge
  load_install_conf
  if [ "$check_only" -eq 0 ] && [ "$assume_yes" -eq 0 ]; then
    [ -t 0 ] || die "--purge deletes $state, $etc and $content_dir for good; confirm with --yes"
    local answer
    read -r -p "Delete all appliance data ($state, $etc, $content_dir) for good? Type 'yes': " answer
    [ "$answer" = yes ] || die "not confirmed; nothing deleted"
  fi
  uninstall
  [ ! -d "$content_dir" ] || act "deleting $content_dir" rm -rf "$content_dir"
  [ ! -d "$state" ] || act "deleting $state" rm -rf "$state"
  [ ! -d "$etc" ] || act "deleting $etc" rm -rf "$etc"
  if id appliance >/dev/null 2>&1; then act "removing the appliance user" userdel appliance; fi
  if getent group appliance >/dev/null 2>&1; then act "removing the appliance group" groupdel appliance; fi
}

# ----- the offline wheelhouse -----
build_wheelhouse() {
  local out="$wheelhouse_out" arch python deps tags=() v
  [ "$check_only" -eq 0 ] || die "--check does not apply to --build-wheelhouse"
  IFS=, read -r -a arch_list <<< "$arches"
  for arch in "${arch_list[@]}"; do
    case "$arch" in
      x86_64|aarch64) ;;
      armv7*|armhf|arm) die "armv7 is not supported (no 32-bit ARM wheels for libzim and others); build for aarch64" ;;
      *) die "unknown architecture $arch (x86_64, aarch64)" ;;
    esac
  done
  mkdir -p "$out/wheels"
  out="$(cd "$out" && pwd)"
  python="$(pick_python)"
  # The project's dependencies, read from pyproject.toml, plus what building the project needs.
  mapfile -t deps < <("$python" - "$here/pyproject.toml" <<'EOF'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    data = tomllib.load(f)
print("\n".join(data["project"]["dependencies"] + data["build-system"]["requires"] + ["pip"]))
EOF
)
  for arch in "${arch_list[@]}"; do
    tags=(--platform "linux_$arch" --platform "manylinux2014_$arch")
    for v in $(seq 17 36); do tags+=(--platform "manylinux_2_${v}_$arch"); done  # Debian 12 has glibc 2.36
    say "downloading wheels for $arch (CPython 3.11, Debian 12's Python)"
    "$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: "${tags[@]}" \
      --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none -d "$out/wheels" "${deps[@]}" \
      || die "pip download for $arch failed"
  done
  for arch in "${arch_list[@]}"; do download_debs "$out" "$(deb_arch_of "$arch")"; done
  (cd "$out" && find wheels debs -type f ! -name SHA256SUMS -print0 | LC_ALL=C sort -z | xargs -0 sha256sum > SHA256SUMS)
  say "wheelhouse ready in $out ($(du -sh "$out" | cut -f1)); install offline with: ./install.sh --device --wheelhouse $out"
}

download_debs() {  # $1 = wheelhouse, $2 = Debian architecture: the runtime packages and every dependency
  local out="$1" deb_arch="$2" debs="$1/debs/$2" tmp pkgs opts=()
  mkdir -p "$debs"
  tmp="$(mktemp -d)"
  # Resolve against an empty package database: every dependency down to libc, so the result installs
  # on any Debian 12 (even minbase) with no network.
  : > "$tmp/status"
  opts=(-o "Dir::State::status=$tmp/status" -o APT::Sandbox::User=root -o Acquire::Languages=none)
  if [ "$deb_arch" != "$(dpkg --print-architecture)" ]; then
    # Another architecture: package lists of its own in a private folder (this machine's apt set-up,
    # sources and lists stay as they are; no foreign architecture is added to dpkg).
    mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
    opts+=(-o "APT::Architecture=$deb_arch" -o "APT::Architectures::=$deb_arch" -o "Dir::State::Lists=$tmp/lists"
      -o "Dir::Cache=$tmp/cache")
    say "fetching the $deb_arch package lists"
    apt-get "${opts[@]}" update -qq || die "apt-get update for $deb_arch failed"
  fi
  say "downloading the runtime Debian packages and their dependencies ($deb_arch)"
  mapfile -t pkgs < <(apt-get "${opts[@]}" -s install --no-install-recommends "${runtime_pkgs[@]}" \
    | awk '/^Inst /{print $2}')
  [ "${#pkgs[@]}" -gt 0 ] || die "could not resolve the runtime packages for $deb_arch (run apt-get update first?)"
  (cd "$debs" && apt-get "${opts[@]}" download -q "${pkgs[@]}" >/dev/null) || die "apt-get download ($deb_arch) failed"
  rm -rf "$tmp"
  say "indexing $debs"
  write_packages_index "$debs"
}

write_packages_index() {  # an apt "flat repository" index of the .deb files in $1 (no dpkg-dev needed)
  local dir="$1" deb
  : > "$dir/Packages.new"
  for deb in "$dir"/*.deb; do
    {
      dpkg-deb -f "$deb"
      printf 'Filename: ./%s\nSize: %s\nSHA256: %s\n\n' "$(basename "$deb")" "$(stat -c %s "$deb")" \
        "$(sha256sum "$deb" | cut -d' ' -f1)"
    } >> "$dir/Packages.new"
  done
  mv -f "$dir/Packages.new" "$dir/Packages"
}

case "$mode" in
  device) device ;;
  uninstall) uninstall ;;
  purge) purge ;;
  build-wheelhouse) build_wheelhouse ;;
esac
