#!/usr/bin/env bash
# The image's self-check hook (run by the SDK's default stage3.sh).
set -euo pipefail
test -d /srv/projects/app/project/.git
echo "selfcheck: project work tree present"
