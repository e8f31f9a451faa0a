#!/usr/bin/env bash
# Stage3: the user's build and self-check. Override it with image_rootfs/bootstrap_scripts/stage3.sh
# (or .salt/stage3.sh in a corpus project). A non-zero exit fails the build and tags nothing.
# The default (re)installs every corpus project with salt, then runs the image's self-check hook.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

if command -v salt-call >/dev/null 2>&1; then
  for project in /srv/projects/*/; do
    [ -d "$project" ] || continue
    name="$(basename "$project")"
    echo "stage3: deploying project ${name}"
    salt-call --retcode-passthrough --local mc_project.deploy "$name" only="install,fixperms"
  done
else
  echo "stage3: no salt-call in the image: no project to deploy with salt"
fi

if [ -x "$here/selfcheck.sh" ]; then
  echo "stage3: running the self-check hook"
  "$here/selfcheck.sh"
fi
echo "stage3: done"
