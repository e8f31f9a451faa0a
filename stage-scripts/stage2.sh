#!/usr/bin/env bash
# Stage2: runs in the booted build container (systemd is PID 1) after the injected tree was copied to /.
# Every MS_* setting is in the environment.
set -euo pipefail
echo "stage2: image ${MS_IMAGE:-?}, systemd $(systemctl is-system-running || true)"
echo "stage2: done"
