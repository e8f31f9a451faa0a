#!/usr/bin/env bash
# Stage1: turn the OS base into a container-friendly systemd image.
# Runs once per change of the base or of these scripts (the stage1 image is cached by a build key).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
here="$(cd "$(dirname "$0")" && pwd)"

echo "stage1: container-friendly systemd (${MS_OS:-?} ${MS_OS_RELEASE:-?})"
# Nothing to do for these in a container: no consoles, no devices to manage, no first-boot wizard,
# no kernel file systems to mount or remount.
for unit in \
    getty.target console-getty.service getty@tty1.service serial-getty@.service \
    systemd-udevd.service systemd-udevd-control.socket systemd-udevd-kernel.socket systemd-udev-trigger.service \
    systemd-udev-settle.service systemd-firstboot.service systemd-remount-fs.service \
    sys-kernel-config.mount sys-kernel-debug.mount sys-kernel-tracing.mount sys-fs-fuse-connections.mount \
    dev-hugepages.mount systemd-modules-load.service systemd-sysctl.service \
    systemd-hwdb-update.service systemd-random-seed.service systemd-machine-id-commit.service \
    apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer; do
  ln -sf /dev/null "/etc/systemd/system/${unit}"
done

# docker commit drops POSIX ACLs and user xattrs: Stage3 saves them (/acls.txt, /xattrs.txt) and this unit
# puts them back at boot.
install -m 0644 "$here/makinastates-acl-restore.service" /etc/systemd/system/makinastates-acl-restore.service
mkdir -p /etc/systemd/system/sysinit.target.wants
ln -sf ../makinastates-acl-restore.service /etc/systemd/system/sysinit.target.wants/makinastates-acl-restore.service

# Survival kit: what the later stages rely on (ACL and xattr save/restore, rsync).
missing=()
for tool in setfacl getfacl setfattr getfattr rsync; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "stage1: installing acl attr rsync (missing: ${missing[*]})"
  # What this install writes besides the packages is dated, or a download's: it goes, so that the same base gives the
  # same layer (docs/reproducible.md). The stamp tells what the install wrote from what the base had.
  stamp="$(mktemp)"
  apt-get update -qq && apt-get install -y -qq --no-install-recommends acl attr rsync
  # The indexes and the package caches (apt-get clean: archives/*.deb, pkgcache.bin, srcpkgcache.bin).
  apt-get clean && rm -rf /var/lib/apt/lists/*
  # ldconfig's aux-cache records inodes and times; dpkg's and debconf's *-old are the state before this install.
  rm -f /var/cache/ldconfig/aux-cache
  find /var/lib/dpkg /var/cache/debconf -maxdepth 1 -name '*-old' -newer "$stamp" -delete
  # dpkg's, apt's and update-alternatives' logs of this install (dated lines): kept, emptied, as the snapshot does.
  find /var/log -type f -newer "$stamp" -exec truncate -s 0 {} +
  rm -f "$stamp"
fi
echo "stage1: done"
