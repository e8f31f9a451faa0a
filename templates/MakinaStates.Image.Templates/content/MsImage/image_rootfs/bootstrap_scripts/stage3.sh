#!/usr/bin/env bash
# Stage3: this image's build and self-check. It runs in the build container once systemd (PID 1) has booted and the
# project's injected_volumes/ and image_rootfs/ are in place at /. A non-zero exit fails the build and tags nothing.
# This file replaces the SDK's own stage3.sh (which deploys corpus projects with salt); delete it to get that back.
# Helpers beside it (image_rootfs/bootstrap_scripts/lib/…) can be sourced: "$(dirname "$0")/lib/helper.sh".
set -euo pipefail

# Install what the image needs:
#   apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx
# Enable a unit of injected_volumes/etc/systemd/system/ (it then starts at every boot of the image):
#   systemctl enable --now myservice.service

# Self-check: fail the build when the image cannot do its job.
test -f /usr/local/share/doc/msimage-template-image/README
echo "stage3: msimage-template-image is ready"
