#!/usr/bin/env bash
# hello-systemd's build: enable the web socket and check that the page is served.
set -euo pipefail
systemctl daemon-reload
systemctl enable hello-web.socket
systemctl start hello-web.socket

# Self-check, with bash alone: ask the page over TCP and compare it with the injected file.
exec 3<>/dev/tcp/127.0.0.1/8080
printf 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n' >&3
response="$(cat <&3)"
exec 3<&-
grep -q '^HTTP/1.0 200 OK' <<<"$response" || { echo "self-check: unexpected answer: $response" >&2; exit 1; }
grep -q 'Hello from systemd' <<<"$response" || { echo "self-check: page content missing" >&2; exit 1; }
echo "stage3: hello-web answers on port 8080"
