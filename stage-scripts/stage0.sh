#!/usr/bin/env bash
# Stage0: create the OS base tarball ($MS_DATA_DIR/$MS_BASEIMAGE) with debootstrap.
# Runs on the build host (as root, with debootstrap) or inside the stage0 builder container.
# The tarball is written under a temporary name and renamed, so an interrupted run never
# leaves a truncated tarball that a later build would reuse ("delete it to redo").
# When the SDK sets MS_BASEIMAGE_RAW, the uncompressed tar is left there instead: the SDK imports it
# at once and writes the tarball from it while the build goes on.
set -euo pipefail

: "${MS_DATA_DIR:?MS_DATA_DIR is required}"
: "${MS_OS:=debian}"
: "${MS_OS_RELEASE:=bookworm}"
: "${MS_OS_MIRROR:?MS_OS_MIRROR is required}"
: "${MS_BASEIMAGE:=baseimage-${MS_OS}-${MS_OS_RELEASE}.tar.xz}"

target="${MS_DATA_DIR%/}/${MS_BASEIMAGE}"
mkdir -p "$(dirname "$target")"
work="$(mktemp -d "${MS_DATA_DIR%/}/.stage0.XXXXXX")"
tmp_tar="${target}.partial.$$"
raw="${MS_BASEIMAGE_RAW:-}"
cleanup() { rm -rf "$work"; rm -f "$tmp_tar" ${raw:+"$raw.partial.$$"}; }
trap cleanup EXIT

packages="systemd,systemd-sysv,dbus,acl,attr,rsync,ca-certificates"
echo "stage0: debootstrap ${MS_OS} ${MS_OS_RELEASE}${MS_OS_ARCH:+ ${MS_OS_ARCH}} from ${MS_OS_MIRROR} (${packages})"
started=$SECONDS
# MS_OS_ARCH (Debian's name of MS_PLATFORM's architecture): another architecture runs under the host's qemu-user-static.
debootstrap ${MS_OS_ARCH:+--arch="${MS_OS_ARCH}"} --variant=minbase --include="${packages}" "${MS_OS_RELEASE}" "$work/rootfs" "${MS_OS_MIRROR}"
echo "stage0: debootstrap took $((SECONDS - started)) s"

# The image's own apt sources point at the same mirror the base was made from.
echo "deb ${MS_OS_MIRROR} ${MS_OS_RELEASE} main" > "$work/rootfs/etc/apt/sources.list"
rm -rf "$work/rootfs/var/cache/apt/archives/"*.deb "$work/rootfs/var/lib/apt/lists/"*
: > "$work/rootfs/etc/machine-id"

if [ -n "$raw" ]; then
  echo "stage0: writing the uncompressed ${raw} (the SDK imports it and writes ${target} from it)"
  tar -C "$work/rootfs" --numeric-owner --xattrs --acls -cf "$raw.partial.$$" .
  mv -f "$raw.partial.$$" "$raw"
  echo "stage0: wrote ${raw} ($(du -h "$raw" | cut -f1)) $((SECONDS - started)) s after debootstrap began"
  # Removing the rootfs takes seconds: in the background, so the import starts now.
  trap - EXIT
  (rm -rf "$work" </dev/null >/dev/null 2>&1 &)
  exit 0
fi

echo "stage0: compressing to ${target}"
case "$target" in
  *.tar.xz) compress=(xz -T0 -3 -c) ;;
  *.tar.gz|*.tgz) compress=(gzip -c) ;;
  *.tar) compress=(cat) ;;
  *) echo "stage0: unsupported base tarball name ${target} (use .tar.xz, .tar.gz or .tar)" >&2; exit 2 ;;
esac
tar -C "$work/rootfs" --numeric-owner --xattrs --acls -cf - . | "${compress[@]}" > "$tmp_tar"
mv -f "$tmp_tar" "$target"
echo "stage0: wrote ${target} ($(du -h "$target" | cut -f1))"
