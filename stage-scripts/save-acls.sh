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
# getfacl -R and getfattr -R walk in readdir order, which differs from one build to the next: the blocks (each
# "# file: PATH", its lines, a blank line) are sorted by path, byte order; getfattr's name=value lines within a block
# by name too (listxattr order). getfacl's lines within a block stay as they are (their order is fixed).
sorted_blocks() {
  LC_ALL=C awk -v lines="${1:-0}" 'BEGIN { RS = "" }
    {
      n = split($0, l, "\n")
      if (lines) for (i = 3; i <= n; i++) {
        v = l[i]
        for (j = i - 1; j >= 2 && (l[j] "") > (v ""); j--) l[j + 1] = l[j]
        l[j + 1] = v
      }
      block = l[1]
      for (i = 2; i <= n; i++) block = block "\n" l[i]
      printf "%s\n%c", block, 0
    }' | LC_ALL=C sort -z | tr '\0' '\n'
}
# -s: only entries with extended ACLs (a short file, a quick restore); -p: absolute names; -n: numeric ids (the SDK
# writes them into the committed layer as binary ACLs; setfacl --restore takes them too).
{ getfacl -R -s -p -n "${dirs[@]}" 2>/dev/null || true; } | sorted_blocks > /acls.txt
if command -v getfattr >/dev/null 2>&1; then
  { getfattr -R -h -d -m '^user\.' -e hex --absolute-names "${dirs[@]}" 2>/dev/null || true; } | sorted_blocks 1 > /xattrs.txt
fi
touch /acls.restore
echo "save-acls: $(grep -c '^# file:' /acls.txt || true) file(s) with ACLs, $(grep -c '^# file:' /xattrs.txt 2>/dev/null || true) with user xattrs"
