#!/bin/sh
# Starts valkey-server or redis-server (LAB_FLAVOR picks; either image works) from the
# mounted base config, adding what varies per lab instance as arguments. The password
# arrives in the environment and never sits in a file of the repository.
set -eu
flavor="${LAB_FLAVOR:-valkey}"
server=""
for b in "${flavor}-server" valkey-server redis-server; do
  if command -v "$b" >/dev/null 2>&1; then server="$b"; break; fi
done
[ -n "$server" ] || { echo "start-server: no valkey-server or redis-server in this image" >&2; exit 1; }
# LAB_DATA_DIR: /data (a volume) or /data-limited (a size-limited tmpfs, for disk_full faults).
dir="${LAB_DATA_DIR:-/data}"
mkdir -p "$dir"
# A disk_full fault's fill file left by a lab that died before healing it.
rm -f "$dir"/lab-fill-*
set -- "$server" /etc/lab/redis.conf --dir "$dir" \
  --maxmemory "${LAB_MAXMEMORY:-256mb}" \
  --maxmemory-policy "${LAB_MAXMEMORY_POLICY:-noeviction}"
if [ -n "${LAB_PASSWORD:-}" ]; then
  set -- "$@" --requirepass "$LAB_PASSWORD" --masterauth "$LAB_PASSWORD"
fi
if [ -n "${LAB_REPLICAOF:-}" ]; then
  set -- "$@" --replicaof "$LAB_REPLICAOF" 6379
fi
if [ "${LAB_CLUSTER:-no}" = "yes" ]; then
  set -- "$@" --cluster-enabled yes --cluster-config-file /data/nodes.conf \
    --cluster-node-timeout "${LAB_CLUSTER_NODE_TIMEOUT_MS:-3000}"
fi
exec "$@"
