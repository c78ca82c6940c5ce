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
# Under Sentinel a node is known by its hostname (its service name on the lab's network; see
# start-sentinel.sh): announced here, its master lists it as `ip=redis-2` and Sentinel keeps
# the same replica when a restart gives the container another address (Podman does).
if [ -n "${LAB_SENTINELS:-}" ]; then
  set -- "$@" --replica-announce-ip "$(hostname)"
fi
# A node restarted after a failover must not come back in the role its compose entry gives
# it: an old master restarting as master accepts writes until Sentinel converts it (a split
# brain of seconds). So ask every Sentinel who the master of our group is now, and follow
# the first answer that is another node answering as a master: Sentinels learn of a failover
# from its leader a moment apart, so one may still name us. If every answer names us (no
# failover), start as master; if none helps (first start: no Sentinel yet), use the
# configured role. Sentinels name nodes by hostname; an address is compared with ours too.
replicaof="${LAB_REPLICAOF:-}"
if [ -n "${LAB_SENTINELS:-}" ] && [ -n "${LAB_GROUP:-}" ]; then
  cli=""
  for c in valkey-cli redis-cli; do
    if command -v "$c" >/dev/null 2>&1; then cli="$c"; break; fi
  done
  named_self=no
  followed=no
  for s in $LAB_SENTINELS; do
    [ -n "$cli" ] || break
    answer=$(REDISCLI_AUTH="${LAB_PASSWORD:-}" timeout 2 "$cli" -h "$s" -p 26379 \
      sentinel get-master-addr-by-name "$LAB_GROUP" 2>/dev/null | head -n 1) || answer=""
    [ -n "$answer" ] || continue
    echo "start-server: Sentinel $s says the master of $LAB_GROUP is $answer" >&2
    self=no
    [ "$answer" = "$(hostname)" ] && self=yes
    ip=$(getent hosts "$answer" 2>/dev/null | awk '{print $1; exit}') || ip=""
    for mine in $(hostname -i 2>/dev/null); do
      if [ "$mine" = "$answer" ] || [ "$mine" = "$ip" ]; then self=yes; fi
    done
    if [ "$self" = yes ]; then
      named_self=yes
    elif REDISCLI_AUTH="${LAB_PASSWORD:-}" timeout 2 "$cli" -h "$answer" -p 6379 \
        info replication 2>/dev/null | grep -q '^role:master'; then
      replicaof="$answer"
      followed=yes
      break
    else
      echo "start-server: $answer does not answer as a master" >&2
    fi
  done
  if [ "$followed" = no ] && [ "$named_self" = yes ]; then
    replicaof=""
    # Named as master by every Sentinel that answered, but a failover may be half done: the
    # leader promotes a replica (SLAVEOF NO ONE) a second or more before any Sentinel names
    # it. Ask a Sentinel for our replicas: one that answers as a master now is the new one.
    for s in $LAB_SENTINELS; do
      replicas=$(REDISCLI_AUTH="${LAB_PASSWORD:-}" timeout 2 "$cli" -h "$s" -p 26379 \
        sentinel replicas "$LAB_GROUP" 2>/dev/null | awk 'prev=="ip"{print} {prev=$0}') || replicas=""
      [ -n "$replicas" ] || continue
      for r in $replicas; do
        if REDISCLI_AUTH="${LAB_PASSWORD:-}" timeout 2 "$cli" -h "$r" -p 6379 \
            info replication 2>/dev/null | grep -q '^role:master'; then
          echo "start-server: replica $r was promoted" >&2
          replicaof="$r"
          break
        fi
      done
      break
    done
  fi
  echo "start-server: starting as ${replicaof:+a replica of }${replicaof:-master}" >&2
fi
if [ -n "$replicaof" ]; then
  set -- "$@" --replicaof "$replicaof" 6379
fi
if [ "${LAB_CLUSTER:-no}" = "yes" ]; then
  set -- "$@" --cluster-enabled yes --cluster-config-file /data/nodes.conf \
    --cluster-node-timeout "${LAB_CLUSTER_NODE_TIMEOUT_MS:-3000}"
fi
exec "$@"
