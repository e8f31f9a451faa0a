#!/usr/bin/env bash
# Runs after stage3.sh when MsDoSnapshot=yes: strip what must not be shared by every container of the
# image (identities, keys, secrets, caches, logs), as the original snapshot step did.
# Override it like the stage scripts (image_rootfs/bootstrap_scripts/snapshot.sh).
set -uo pipefail
shopt -s nullglob dotglob

echo "snapshot: clearing machine identity, keys, histories, logs, caches"
# A fresh machine id per container (systemd makes one at boot when the file is empty).
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id

# SSH host keys are made again at first boot, so containers do not share them.
if compgen -G '/etc/ssh/ssh_host_*' >/dev/null; then
  rm -f /etc/ssh/ssh_host_*
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
    [ -f "$f" ] && : > "$f"
  done
done

# Logs: keep the files (services expect them), drop their content.
find /var/log -type f \( -name '*.gz' -o -name '*.[0-9]' -o -name '*.old' \) -delete 2>/dev/null
find /var/log -type f -exec truncate -s 0 {} + 2>/dev/null
rm -rf /var/log/journal/*

rm -rf /tmp/* /var/tmp/*
rm -rf /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/* /var/cache/apt/*.bin /var/lib/apt/lists/*

# Salt minion keys and pillars hold secrets of the build, not of the containers.
rm -rf /etc/salt/pki /etc/mastersalt/pki /srv/pillar/* /srv/mastersalt-pillar/*
echo "snapshot: done"
exit 0
