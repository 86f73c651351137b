#!/usr/bin/env bash
# image/build.sh — build a bootable Debian 12 device image with the appliance installed.
#
#   sudo image/build.sh [OUTPUT.img] [SIZE]      (default: appliance.img, 8G)
#
# Steps: debootstrap a minimal bookworm into a folder, copy this checkout into /opt/appliance/src,
# run `install.sh --device` inside the chroot (the same script a technician runs on a bare device),
# add a kernel, bootloader and a first-boot unit that creates the admin, then pack it into a raw disk
# image with one ext4 partition. Needs: debootstrap, parted, e2fsprogs, grub-pc-bin, and root.
# The result boots under qemu-system-x86_64 -drive file=appliance.img,format=raw -m 2G.
set -euo pipefail

out="${1:-appliance.img}"
size="${2:-8G}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$(mktemp -d /tmp/appliance-image.XXXXXX)"
root="$work/root"
trap 'umount -R "$root" 2>/dev/null || true; [ -n "${loop:-}" ] && losetup -d "$loop" 2>/dev/null || true' EXIT

[ "$(id -u)" -eq 0 ] || { echo "image/build.sh must run as root" >&2; exit 1; }
for tool in debootstrap parted mkfs.ext4 losetup grub-install; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install debootstrap parted e2fsprogs grub-pc-bin)" >&2; exit 1; }
done

echo "==> debootstrap bookworm into $root"
debootstrap --variant=minbase --include=systemd-sysv,linux-image-amd64,grub-pc,ifupdown,openssh-server,sudo \
  bookworm "$root"

echo "==> copying the appliance source"
mkdir -p "$root/opt/appliance/src"
git -C "$here" archive HEAD | tar -x -C "$root/opt/appliance/src"

echo "==> running install.sh --device in the chroot"
for fs in proc sys dev; do mount --rbind "/$fs" "$root/$fs"; done
chroot "$root" /bin/bash -c "cd /opt/appliance/src && ./install.sh --device"
install -m 0644 "$here/image/appliance-firstboot.service" "$root/etc/systemd/system/"
install -m 0755 "$here/image/firstboot.sh" "$root/opt/appliance/firstboot.sh"
chroot "$root" systemctl enable appliance-firstboot.service appliance.service
echo "appliance" > "$root/etc/hostname"
umount -R "$root/proc" "$root/sys" "$root/dev"

echo "==> packing $out ($size)"
truncate -s "$size" "$out"
parted -s "$out" mklabel msdos mkpart primary ext4 1MiB 100% set 1 boot on
loop="$(losetup --find --show --partscan "$out")"
mkfs.ext4 -q -L appliance "${loop}p1"
mkdir -p "$work/mnt"
mount "${loop}p1" "$work/mnt"
cp -a "$root/." "$work/mnt/"
echo "LABEL=appliance / ext4 defaults,noatime 0 1" > "$work/mnt/etc/fstab"
for fs in proc sys dev; do mount --rbind "/$fs" "$work/mnt/$fs"; done
chroot "$work/mnt" grub-install --target=i386-pc "$loop"
chroot "$work/mnt" update-grub
umount -R "$work/mnt"
echo "==> $out ready"
