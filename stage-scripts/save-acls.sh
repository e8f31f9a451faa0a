#!/usr/bin/env bash
# Runs after stage3.sh (and snapshot.sh): docker commit drops POSIX ACLs and user.* xattrs, so save them
# as the seed does (getfacl -R / > /acls.txt) and mark the image so the ACL-restore unit applies them at boot.
set -euo pipefail
cd /
# Real file systems only: not the kernel's pseudo file systems, nor the tmpfs mounts of the build container.
dirs=()
for d in /*; do
  case "$d" in /proc|/sys|/dev|/run|/tmp|/docker) continue ;; esac
  [ -d "$d" ] && [ ! -L "$d" ] && dirs+=("$d")
done
# -s: only entries with extended ACLs (a short file, a quick restore); -p: absolute names; -n: numeric ids (the SDK
# writes them into the committed layer as binary ACLs; setfacl --restore takes them too).
getfacl -R -s -p -n "${dirs[@]}" > /acls.txt 2>/dev/null || true
if command -v getfattr >/dev/null 2>&1; then
  getfattr -R -h -d -m '^user\.' -e hex --absolute-names "${dirs[@]}" > /xattrs.txt 2>/dev/null || true
fi
touch /acls.restore
echo "save-acls: $(grep -c '^# file:' /acls.txt || true) file(s) with ACLs, $(grep -c '^# file:' /xattrs.txt 2>/dev/null || true) with user xattrs"
