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
# A node restarted after a failover must not come back in the role its compose entry gives
# it: an old master restarting as master accepts writes until Sentinel converts it (a split
# brain of seconds). So ask the Sentinels first who the master of our group is now; only when
# none answers (first start: they are not up yet) use the configured role.
replicaof="${LAB_REPLICAOF:-}"
if [ -n "${LAB_SENTINELS:-}" ] && [ -n "${LAB_GROUP:-}" ]; then
  cli=""
  for c in valkey-cli redis-cli; do
    if command -v "$c" >/dev/null 2>&1; then cli="$c"; break; fi
  done
  for s in $LAB_SENTINELS; do
    [ -n "$cli" ] || break
    answer=$(REDISCLI_AUTH="${LAB_PASSWORD:-}" timeout 2 "$cli" -h "$s" -p 26379 \
      sentinel get-master-addr-by-name "$LAB_GROUP" 2>/dev/null | head -n 1) || answer=""
    [ -n "$answer" ] || continue
    self=no
    [ "$answer" = "$(hostname)" ] && self=yes
    ip=$(getent hosts "$answer" 2>/dev/null | awk '{print $1; exit}') || ip=""
    for mine in $(hostname -i 2>/dev/null); do
      [ "$mine" = "$answer" ] || [ "$mine" = "$ip" ] && self=yes
    done
    echo "start-server: Sentinel $s says the master of $LAB_GROUP is $answer" >&2
    if [ "$self" = yes ]; then
      replicaof=""
    elif REDISCLI_AUTH="${LAB_PASSWORD:-}" timeout 2 "$cli" -h "$answer" -p 6379 \
        info replication 2>/dev/null | grep -q '^role:master'; then
      replicaof="$answer"
    else
      # Nobody answers as master there: most likely our own address from before a restart
      # that gave us another one (Podman does), with no failover since. Keep the configured
      # role rather than replicate from nothing.
      echo "start-server: $answer does not answer as a master; keeping the configured role" >&2
    fi
    break
  done
fi
if [ -n "$replicaof" ]; then
  set -- "$@" --replicaof "$replicaof" 6379
fi
if [ "${LAB_CLUSTER:-no}" = "yes" ]; then
  set -- "$@" --cluster-enabled yes --cluster-config-file /data/nodes.conf \
    --cluster-node-timeout "${LAB_CLUSTER_NODE_TIMEOUT_MS:-3000}"
fi
exec "$@"
