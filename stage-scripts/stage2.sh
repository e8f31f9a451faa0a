#!/usr/bin/env bash
# Stage2: runs in the build container (systemd is PID 1 unless MsInit=none) after the injected tree was copied to /.
# Every MS_* setting is in the environment. Prepares the salt layout and, when MsMakinaStates says so, installs
# makina-states ("with or WITHOUT makina-states", as the seed has it).
set -euo pipefail
echo "stage2: image ${MS_IMAGE:-?}, init ${MS_INIT:-systemd}$([ "${MS_INIT:-systemd}" = systemd ] && echo ", systemd $(systemctl is-system-running || true)")"
mkdir -p /srv/pillar /srv/mastersalt-pillar /srv/projects

# Paths the user injected (NUL-separated, written by the SDK): an injected copy is used, never replaced.
injected_list=/docker/injected-paths
injected() {
  [ -f "$injected_list" ] && tr '\0' '\n' < "$injected_list" | grep -qxF -- "$1"
}

boot_salt=/srv/salt/makina-states/_scripts/boot-salt.sh
installed() { [ -x "$boot_salt" ] && command -v salt-call >/dev/null 2>&1; }

# MS_MAKINASTATES is resolved by the SDK (auto: corpus projects and makina-states base images; a non-empty
# MsMakinaStatesBuildForce implies true).
if [ "${MS_MAKINASTATES:-false}" != true ]; then
  echo "stage2: makina-states step skipped (MsMakinaStates=${MS_MAKINASTATES:-false})"
  echo "stage2: done"
  exit 0
fi

# The SDK reports this exit code as MSI2006, naming MsGitUrl and the ways out.
unavailable() { echo "stage2: $*" >&2; exit 69; }

if installed && [ -z "${MS_MAKINASTATES_BUILD_FORCE:-}" ]; then
  echo "stage2: makina-states step: an installation is present and kept (set MsMakinaStatesBuildForce to refresh it)"
else
  echo "stage2: makina-states step: ${MS_MAKINASTATES_BUILD_FORCE:+refreshing, MsMakinaStatesBuildForce is set; }installing ${MS_GIT_URL:-?} at ${MS_GIT_BRANCH:-stable}"
  for target in /srv/salt/makina-states /srv/mastersalt/makina-states; do
    if injected "$target"; then
      echo "stage2: using the injected $target"
      continue
    fi
    rm -rf "$target"
    mkdir -p "$(dirname "$target")"
    if [ -d /docker/makina-states ]; then
      # A repository of the build host, checked out there at MsGitBranch and sent in by the SDK.
      cp -a /docker/makina-states "$target"
    else
      : "${MS_GIT_URL:?MsGitUrl (MS_GIT_URL) must name the makina-states repository}"
      if ! command -v git >/dev/null 2>&1; then
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends git ca-certificates >/dev/null; } \
          || unavailable "git, needed to clone ${MS_GIT_URL}, could not be installed"
      fi
      GIT_TERMINAL_PROMPT=0 git clone --quiet --branch "${MS_GIT_BRANCH:-stable}" "$MS_GIT_URL" "$target" \
        || unavailable "cannot clone ${MS_GIT_URL} (branch ${MS_GIT_BRANCH:-stable})"
    fi
  done
  cd /srv/salt/makina-states
  # Non-interactive bootstrap of the cloned branch, as the seed's stage2 runs it.
  "$boot_salt" -C -b "${MS_GIT_BRANCH:-stable}"
fi
echo "stage2: done"
