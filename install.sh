#!/usr/bin/env bash
# install.sh — set up appliance for development (--dev) or install it on a device (--device).
#
#   ./install.sh --dev      .venv with the package (editable) and test tools, plus the Debian packages
#                           the tests start for real (slapd, ffmpeg, kiwix-tools, nginx, wrk, chromium...).
#   ./install.sh --device   as root on Debian 12: system user, /opt/appliance, /etc/appliance,
#                           /var/lib/appliance and the systemd unit (enabled, not started by default).
#
# Idempotent: a second run changes nothing (packages already present are not touched, the venv is only
# rebuilt when pyproject.toml changed).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
mode=""
start_service=0
for arg in "$@"; do
  case "$arg" in
    --dev) mode=dev ;;
    --device) mode=device ;;
    --start) start_service=1 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "install.sh: unknown option $arg (try --help)" >&2; exit 2 ;;
  esac
done
[ -n "$mode" ] || { echo "install.sh: say --dev or --device (try --help)" >&2; exit 2; }

say() { printf '==> %s\n' "$*"; }

# Debian packages: runtime needs for a device; tests and benchmarks add real peers to test against.
runtime_pkgs=(python3 python3-venv ca-certificates ffmpeg xmlsec1 sqlite3)
dev_pkgs=(slapd ldap-utils kiwix-tools wrk nginx-light chromium python3.11-doc git)

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

# --device
[ "$(id -u)" -eq 0 ] || { echo "install.sh --device must run as root" >&2; exit 1; }
prefix="${APPLIANCE_PREFIX:-/opt/appliance}"
etc="${APPLIANCE_ETC:-/etc/appliance}"
state="${APPLIANCE_STATE:-/var/lib/appliance}"
apt_install "${runtime_pkgs[@]}"
if ! id appliance >/dev/null 2>&1; then
  say "creating system user appliance"
  useradd --system --home-dir "$state" --shell /usr/sbin/nologin appliance
fi
install -d -m 0755 "$prefix" "$etc"
install -d -m 0700 -o appliance -g appliance "$state"
install -d -m 0755 -o appliance -g appliance "$state/content-cache" "$state/content-cache/zim" "$state/content-cache/videos"
install_venv "$prefix/venv" device
if [ ! -f "$etc/appliance.toml" ]; then
  say "writing $etc/appliance.toml"
  cat > "$etc/appliance.toml" <<EOF
# appliance configuration; every key is documented in README.md ("Configuration reference").
[http]
host = "0.0.0.0"
port = 8080

[paths]
data_dir = "$state"
content_root = "$state/content-cache"
EOF
  chmod 0640 "$etc/appliance.toml"
  chgrp appliance "$etc/appliance.toml"
fi
unit_src="$here/systemd/appliance.service"
unit_dst="/etc/systemd/system/appliance.service"
if ! cmp -s "$unit_src" "$unit_dst" 2>/dev/null; then
  say "installing $unit_dst"
  install -m 0644 "$unit_src" "$unit_dst"
  command -v systemctl >/dev/null && [ -d /run/systemd/system ] && systemctl daemon-reload
fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl enable appliance.service >/dev/null 2>&1 || true
  [ "$start_service" -eq 1 ] && systemctl restart appliance.service
else
  systemctl enable appliance.service >/dev/null 2>&1 || true  # offline enable (image builds, chroots)
fi
sudo_hint="$prefix/venv/bin/appliance user add --config $etc/appliance.toml --username ADMIN --role system_admin --password-stdin"
say "installed. Create the first admin with: $sudo_hint"
say "then: systemctl start appliance   (check: $prefix/venv/bin/appliance doctor --config $etc/appliance.toml)"
