#!/usr/bin/env bash
# Runs after stage3.sh when MsDoSnapshot=yes: strip what the build generated or what identifies one machine
# (machine id, SSH host keys, salt keys, logs, caches, histories), as the original snapshot step did.
# Every path the user injected stays, preconfigured pillars and project trees included: the SDK lists them
# (NUL-separated) in /docker/injected-paths, and one that would have been stripped is named. Secrets that must not
# be committed do not belong in the injected tree: MsSecret puts them in /run/secrets for the build only.
# Override it like the stage scripts (image_rootfs/bootstrap_scripts/snapshot.sh).
set -uo pipefail
shopt -s nullglob dotglob

declare -A injected=()
if [ -f /docker/injected-paths ]; then
  while IFS= read -r -d '' path; do injected["$path"]=1; done < /docker/injected-paths
fi

# True when the path was injected: it is kept (a file is named, on stderr, a folder kept silently).
kept() {
  [ -n "${injected[$1]:-}" ] || return 1
  [ -d "$1" ] && [ ! -L "$1" ] || echo "snapshot: kept $1: it was injected" >&2
}

# Prints (NUL-separated) what lies under DIR, folders excepted, matching the find tests given, that was not injected.
not_injected() {
  local dir=$1 path
  shift
  [ -d "$dir" ] || return 0
  find "$dir" -mindepth 1 ! -type d "$@" -print0 2>/dev/null | while IFS= read -r -d '' path; do
    kept "$path" || printf '%s\0' "$path"
  done
}

# Empties DIR of what was not injected; the folders left empty go (DIR itself too with --self).
strip_tree() {
  local self=0 dir path
  [ "$1" = --self ] && { self=1; shift; }
  for dir in "$@"; do
    [ -d "$dir" ] || continue
    not_injected "$dir" | xargs -0r rm -f
    find "$dir" -mindepth $((1 - self)) -depth -type d -print0 2>/dev/null | while IFS= read -r -d '' path; do
      kept "$path" || rmdir "$path" 2>/dev/null
    done
  done
}

echo "snapshot: clearing machine identity, keys, histories, logs, caches"
# A fresh machine id per container (systemd makes one at boot when the file is empty).
kept /etc/machine-id || : > /etc/machine-id
[ -e /var/lib/dbus/machine-id ] && { kept /var/lib/dbus/machine-id || rm -f /var/lib/dbus/machine-id; }

# SSH host keys are made again at first boot, so containers do not share them.
removed_host_keys=0
for key in /etc/ssh/ssh_host_*; do
  kept "$key" || { rm -f "$key"; removed_host_keys=1; }
done
if [ "$removed_host_keys" = 1 ]; then
  cat > /etc/systemd/system/makinastates-ssh-hostkeys.service <<'UNIT'
[Unit]
Description=Make this container's SSH host keys (removed from the image when it was built)
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key
Before=ssh.service sshd.service

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
  mkdir -p /etc/systemd/system/multi-user.target.wants
  ln -sf ../makinastates-ssh-hostkeys.service /etc/systemd/system/multi-user.target.wants/makinastates-ssh-hostkeys.service
fi

for home in /root /home/*; do
  for f in "$home"/.ssh/authorized_keys "$home"/.ssh/known_hosts "$home"/.*_history "$home"/.lesshst; do
    [ -f "$f" ] && { kept "$f" || : > "$f"; }
  done
done

# What systemd writes until the container stops must not land in the image: journald moves to /run (not committed),
# and systemd-update-utmp writes its shutdown record (time, kernel) into wtmp now, before wtmp is emptied below.
if [ -d /run/systemd/system ]; then
  journalctl --relinquish-var >/dev/null 2>&1 || true
  systemctl stop systemd-update-utmp.service >/dev/null 2>&1 || true
fi

# Logs: keep the files (services expect them), drop their content; rotated ones and the journal go.
not_injected /var/log \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) | xargs -0r rm -f
not_injected /var/log -type f | xargs -0r truncate -s 0
strip_tree /var/log/journal /tmp /var/tmp

not_injected /var/cache/apt/archives -name '*.deb' | xargs -0r rm -f
strip_tree /var/cache/apt/archives/partial /var/lib/apt/lists
for f in /var/cache/apt/*.bin; do kept "$f" || rm -f "$f"; done

# What differs from one build to the next with the same inputs (docs/reproducible.md): ldconfig's aux-cache (inodes,
# times), the state dpkg and debconf had before the last change (*-old), timers' stamps (their time is their content:
# clamped to the epoch, a Persistent= timer would fire at first boot), and per-machine seeds and secrets.
for f in /var/cache/ldconfig/aux-cache /var/lib/dpkg/*-old /var/cache/debconf/*-old /var/lib/systemd/timers/stamp-* \
    /var/lib/systemd/random-seed /var/lib/systemd/credential.secret; do
  [ -e "$f" ] || [ -L "$f" ] || continue
  kept "$f" || rm -f "$f"
done

# Salt minion keys identify the build's machine, not the containers.
strip_tree --self /etc/salt/pki /etc/mastersalt/pki
echo "snapshot: done"
exit 0
