#!/usr/bin/env bash
# Stage2: runs in the booted build container (systemd is PID 1) after the injected tree was copied to /.
# Every MS_* setting is in the environment. Prepares the salt layout and, when asked, installs makina-states.
set -euo pipefail
echo "stage2: image ${MS_IMAGE:-?}, systemd $(systemctl is-system-running || true)"
mkdir -p /srv/pillar /srv/mastersalt-pillar /srv/projects

boot_salt=/srv/salt/makina-states/_scripts/boot-salt.sh
installed() { [ -x "$boot_salt" ] && command -v salt-call >/dev/null 2>&1; }

# The seed's rules for the makina-states step.
reason=""
if [ -n "${MS_MAKINASTATES_BUILD_FORCE:-}" ]; then
  reason="MsMakinaStatesBuildForce is set"
elif [[ "${MS_IMAGE:-}" =~ /makina-states-${MS_OS:-debian}-${MS_OS_RELEASE:-bookworm}(:.*)?$ ]]; then
  reason="${MS_IMAGE} is a base makina-states image"
elif [ -n "${MS_GIT_URL:-}" ] && ! installed; then
  reason="MsGitUrl is set and no working installation is present"
fi

if [ -z "$reason" ]; then
  if [ -n "${MS_GIT_URL:-}" ]; then
    echo "stage2: makina-states step skipped: an installation is present (set MsMakinaStatesBuildForce to redo it)"
  else
    echo "stage2: makina-states step skipped: not forced, not a makina-states base image, and MsGitUrl is not set"
  fi
else
  echo "stage2: makina-states step: ${reason}"
  : "${MS_GIT_URL:?MsGitUrl (MS_GIT_URL) must name the makina-states repository}"
  for target in /srv/salt/makina-states /srv/mastersalt/makina-states; do
    rm -rf "$target"
    mkdir -p "$(dirname "$target")"
    if [ -d /docker/makina-states ]; then
      # A repository of the build host, checked out there at MsGitBranch and sent in by the SDK.
      cp -a /docker/makina-states "$target"
    else
      command -v git >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git ca-certificates; }
      git clone --quiet --branch "${MS_GIT_BRANCH:-stable}" "$MS_GIT_URL" "$target"
    fi
  done
  cd /srv/salt/makina-states
  # Non-interactive bootstrap of the cloned branch, as the seed's stage2 runs it.
  "$boot_salt" -C -b "${MS_GIT_BRANCH:-stable}"
fi
echo "stage2: done"
