#!/usr/bin/env bash
# Stage3: the user's build and self-check. Override it with image_rootfs/bootstrap_scripts/stage3.sh
# (or .salt/stage3.sh in a corpus project). A non-zero exit fails the build and tags nothing.
set -euo pipefail
echo "stage3: default build of ${MS_IMAGE:-?}: nothing to do"
