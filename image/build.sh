#!/usr/bin/env bash
# image/build.sh — build a bootable Debian 12 x86-64 disk image with the appliance installed, offline.
#
#   sudo image/build.sh --wheelhouse DIR [--output appliance.img] [--size 4G] [--base-tarball FILE] [--mirror URL]
#
# Steps: debootstrap a minimal bookworm with a kernel (or unpack --base-tarball, which is written after a
# fresh debootstrap so the next build can skip it), run `install.sh --device --wheelhouse DIR --firstboot`
# in it with no network (the same script a technician runs on a bare device), add DHCP networking
# (systemd-networkd on every wired NIC, systemd-resolved for DNS), then pack it into a raw disk image with
# one ext4 partition (label "appliance") and GRUB on its MBR. Nothing is fetched at first boot: the
# first-boot unit names the host appliance-<machine id> and shows a one-time admin password on the
# console. The image boots under: qemu-system-x86_64 -m 2G -drive file=appliance.img,format=raw
#
# Needs root and: debootstrap, parted, e2fsprogs, util-linux (losetup, partx), grub-pc-bin and grub-common
# (grub-mkimage). Whatever happens, the work folder, its mounts and the loop device are removed on exit;
# a failed build leaves no image behind. arm64 images are not built: they need a foreign-architecture
# chroot (qemu-user-static and binfmt_misc) and an EFI GRUB, which this script does not set up.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="appliance.img"
size="4G"
wheelhouse=""
base_tarball=""
mirror=""
arch="amd64"

die() { echo "image/build.sh: $*" >&2; exit 1; }
say() { printf '==> %s\n' "$*"; }
usage() { sed -n '2,19p' "$0"; }

while [ $# -gt 0 ]; do
  case "$1" in
    --wheelhouse) wheelhouse="${2:?--wheelhouse needs a folder}"; shift ;;
    --output) out="${2:?--output needs a file}"; shift ;;
    --size) size="${2:?--size needs a size such as 4G}"; shift ;;
    --base-tarball) base_tarball="${2:?--base-tarball needs a file}"; shift ;;
    --mirror) mirror="${2:?--mirror needs a URL}"; shift ;;
    --arch) arch="${2:?--arch needs amd64}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown option $1 (try --help)" ;;
  esac
  shift
done

# ----- every check before anything is created -----
[ "$(id -u)" -eq 0 ] || die "must run as root (it uses debootstrap, loop devices and mounts)"
[ "$arch" = amd64 ] || die "only amd64 images are built here (arm64 needs qemu-user-static, binfmt_misc and an EFI GRUB)"
[ -n "$wheelhouse" ] || die "--wheelhouse DIR is required (make one with: ./install.sh --build-wheelhouse DIR); the image installs offline"
[ -d "$wheelhouse/wheels" ] || die "$wheelhouse has no wheels/ folder (make it with ./install.sh --build-wheelhouse)"
[ -f "$wheelhouse/debs/$arch/Packages" ] || die "$wheelhouse has no .deb files for $arch"
wheelhouse="$(cd "$wheelhouse" && pwd)"
for tool in parted mkfs.ext4 losetup partx grub-mkimage unshare findmnt; do
  command -v "$tool" >/dev/null || die "missing $tool (apt-get install parted e2fsprogs util-linux grub-pc-bin grub-common)"
done
[ -d /usr/lib/grub/i386-pc ] || die "missing GRUB's BIOS modules (apt-get install grub-pc-bin)"
if [ -z "$base_tarball" ] || [ ! -f "$base_tarball" ]; then
  command -v debootstrap >/dev/null || die "missing debootstrap (apt-get install debootstrap)"
fi
[[ "$size" =~ ^[0-9]+[MG]$ ]] || die "--size must look like 4G or 3500M"
out_dir="$(cd "$(dirname "$out")" && pwd)" || die "the folder of $out does not exist"
out="$out_dir/$(basename "$out")"

if [ -z "$mirror" ]; then
  # The Debian mirror apt already uses on this machine (the first non-security URI it lists).
  mirror="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
    | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]+' | grep -v security | head -1 || true)"
  [ -n "$mirror" ] || die "no Debian mirror found in /etc/apt/sources.list*; pass --mirror URL"
fi

# ----- work folder and the clean-up that always runs -----
work="$(mktemp -d "${TMPDIR:-/var/tmp}/appliance-image.XXXXXX")"
root="$work/root"
mnt="$work/mnt"
loop=""
partial="$out.partial"

cleanup() {
  local status=$? target
  set +e
  # Unmount whatever is still mounted under the work folder, deepest first.
  for _ in 1 2 3; do
    mapfile -t mounted < <(findmnt -rn -o TARGET | grep -F "$work/" | sort -r)
    [ "${#mounted[@]}" -eq 0 ] && break
    for target in "${mounted[@]}"; do umount "$target" 2>/dev/null || umount -l "$target"; done
  done
  if [ -n "$loop" ]; then
    partx -d "$loop" 2>/dev/null
    losetup -d "$loop" 2>/dev/null
  fi
  if findmnt -rn -o TARGET | grep -qF "$work/"; then
    echo "image/build.sh: something is still mounted under $work; NOT deleting it (unmount it, then rm -rf $work)" >&2
  else
    rm -rf --one-file-system "$work"
  fi
  rm -f "$partial"
  [ "$status" -eq 0 ] || echo "image/build.sh: failed (exit $status); work folder, mounts and loop device cleaned up" >&2
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# In a private mount namespace with no network: the chroot's /proc, /sys and /dev vanish with it, so
# no bind mount of the host's can outlive the step, and nothing can be fetched.
in_chroot() { _chroot --net "$@"; }
# The same with the network, for the build-time base system only (never for the appliance's install).
in_chroot_online() { _chroot "$@"; }
_chroot() {
  local net=()
  [ "$1" != --net ] || { net=(--net); shift; }
  unshare --mount "${net[@]}" --fork --propagation private bash -c '
    set -e
    root="$1"; shift
    mount -t proc proc "$root/proc"
    mount -t sysfs sysfs "$root/sys"
    mount --rbind /dev "$root/dev"
    exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive "$@"
  ' in_chroot "$root" "$@"
}

# ----- the root file system -----
include="systemd-sysv,procps,linux-image-amd64,initramfs-tools,iproute2,less"
if [ -n "$base_tarball" ] && [ -f "$base_tarball" ]; then
  say "unpacking $base_tarball"
  mkdir -p "$root"
  tar -C "$root" --numeric-owner -xpf "$base_tarball"
else
  say "debootstrap bookworm (minbase + kernel) into $root"
  debootstrap --variant=minbase --include="$include" bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed"; }
  # systemd-resolved (DNS for DHCP networking) fails to configure inside debootstrap; apt sets it up.
  { in_chroot_online apt-get update -qq && in_chroot_online apt-get install -y -qq --no-install-recommends systemd-resolved; } > "$work/resolved.log" 2>&1 \
    || { tail -20 "$work/resolved.log" >&2; die "installing systemd-resolved failed"; }
  in_chroot_online apt-get clean
  if [ -n "$base_tarball" ]; then
    say "saving the base system as $base_tarball for the next build"
    tar -C "$root" --numeric-owner -cpf "$base_tarball.tmp" . && mv -f "$base_tarball.tmp" "$base_tarball"
  fi
fi

say "installing the appliance offline (install.sh --device --wheelhouse --firstboot)"
mkdir -p "$root/root/appliance-src" "$root/root/wheelhouse"
(cd "$here" && tar -cf - --exclude=.git --exclude=.venv --exclude=__pycache__ --exclude=var --exclude='*.img' \
  --exclude=content-cache/zim --exclude=content-cache/videos --exclude=build --exclude='*.egg-info' .) \
  | tar -C "$root/root/appliance-src" -xf -
cp -a "$wheelhouse/." "$root/root/wheelhouse/"
in_chroot /root/appliance-src/install.sh --device --wheelhouse /root/wheelhouse --firstboot
rm -rf "$root/root/appliance-src" "$root/root/wheelhouse"

say "networking (DHCP on every wired NIC), host name, machine id"
cat > "$root/etc/systemd/network/80-wired-dhcp.network" <<'EOF'
# Every wired NIC gets an address by DHCP (IPv4 and IPv6 router advertisements).
[Match]
Type=ether
Name=en* eth*

[Network]
DHCP=yes
EOF
in_chroot systemctl enable --quiet systemd-networkd.service systemd-resolved.service
ln -sfn /run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
echo appliance > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
# An empty machine id: each device makes its own at first boot (and so its own host name).
: > "$root/etc/machine-id"
rm -f "$root/var/lib/dbus/machine-id"
in_chroot apt-get clean
rm -rf "$root/var/lib/apt/lists/"*

# ----- the disk image -----
say "packing $out ($size)"
rm -f "$partial"
truncate -s "$size" "$partial"
parted -s "$partial" mklabel msdos mkpart primary ext4 1MiB 100% set 1 boot on
loop="$(losetup --find --show --partscan "$partial")"
# Without udev the partition nodes may not appear by themselves.
partx -a "$loop" 2>/dev/null || partx -u "$loop" 2>/dev/null || true
for _ in $(seq 1 50); do [ -b "${loop}p1" ] && break; sleep 0.1; done
[ -b "${loop}p1" ] || die "no partition device ${loop}p1 appeared"
uuid="$(cat /proc/sys/kernel/random/uuid)"
mkfs.ext4 -q -L appliance -U "$uuid" "${loop}p1"
mkdir -p "$mnt"
mount "${loop}p1" "$mnt"
tar -C "$root" --numeric-owner -cpf - . | tar -C "$mnt" --numeric-owner -xpf -
printf 'UUID=%s / ext4 defaults,noatime,errors=remount-ro 0 1\n' "$uuid" > "$mnt/etc/fstab"
[ -e "$mnt/vmlinuz" ] && [ -e "$mnt/initrd.img" ] || die "the kernel or initramfs is missing from the image"
say "installing GRUB (BIOS) on the image"
# grub-install cannot map a loop device's partition to a GRUB drive without udev, so GRUB is put in
# place the way grub-install would: boot.img's code in the MBR (it loads sector 1), and core.img (whose
# first sector lists its own sectors) right after it, in the gap before the partition. core.img finds
# the root file system by UUID and reads its modules and grub.cfg from /boot/grub.
mkdir -p "$mnt/boot/grub/i386-pc"
cp /usr/lib/grub/i386-pc/*.mod /usr/lib/grub/i386-pc/*.lst "$mnt/boot/grub/i386-pc/"
printf 'search --no-floppy --fs-uuid --set=root %s\nset prefix=($root)/boot/grub\n' "$uuid" > "$work/early.cfg"
grub-mkimage -O i386-pc -o "$work/core.img" -c "$work/early.cfg" -p /boot/grub \
  biosdisk part_msdos ext2 search search_fs_uuid > "$work/grub.log" 2>&1 || { cat "$work/grub.log" >&2; die "grub-mkimage failed"; }
[ "$(stat -c %s "$work/core.img")" -lt $((2047 * 512)) ] || die "core.img does not fit before the partition"
# A fixed grub.cfg naming the file system by UUID (update-grub in a chroot would write the build
# machine's loop device). /vmlinuz and /initrd.img follow kernel upgrades on the device.
cat > "$mnt/boot/grub/grub.cfg" <<EOF
serial --unit=0 --speed=115200
terminal_input console serial
terminal_output console serial
set timeout=2
set default=0
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root $uuid
menuentry "appliance (Debian 12)" {
  linux /vmlinuz root=UUID=$uuid ro console=tty0 console=ttyS0,115200n8
  initrd /initrd.img
}
EOF
umount "$mnt"
partx -d "$loop" 2>/dev/null || true
losetup -d "$loop"
loop=""
# Only the first 440 bytes of boot.img: the partition table after them stays.
dd if=/usr/lib/grub/i386-pc/boot.img of="$partial" bs=440 count=1 conv=notrunc status=none
dd if="$work/core.img" of="$partial" bs=512 seek=1 conv=notrunc status=none
mv -f "$partial" "$out"
say "$out ready (root file system UUID $uuid)"
