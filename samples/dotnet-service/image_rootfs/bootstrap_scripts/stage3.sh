#!/usr/bin/env bash
# dotnet-service's build: enable the unit, start it, and check that it answers.
set -euo pipefail
systemctl daemon-reload
systemctl enable dotnet-service.service
systemctl start dotnet-service.service
for _ in $(seq 1 50); do
  if exec 3<>/dev/tcp/127.0.0.1/8081 2>/dev/null; then break; fi
  sleep 0.2
done
printf 'GET / HTTP/1.0\r\n\r\n' >&3
response="$(cat <&3)"
exec 3<&-
grep -q 'Hello from a .NET service' <<<"$response" || { echo "self-check: unexpected answer: $response" >&2; exit 1; }
echo "stage3: dotnet-service answers on port 8081"
