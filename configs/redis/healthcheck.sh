#!/bin/sh
# Compose healthcheck for Redis/Valkey nodes and Sentinels: PING answered PONG (after AUTH).
port="${1:-6379}"
for c in valkey-cli redis-cli; do
  if command -v "$c" >/dev/null 2>&1; then
    REDISCLI_AUTH="${LAB_PASSWORD:-}" "$c" -p "$port" ping 2>/dev/null | grep -q PONG
    exit $?
  fi
done
exit 1
