#!/bin/sh
# Starts a Sentinel. Sentinel rewrites its own config (current master, known replicas and
# sentinels), so the file lives in the container's data volume and is generated only once;
# restarting a Sentinel keeps what it learned, as in production.
#
# Nodes are known by hostname (their service name on the lab's network), not by address:
# Podman gives a restarted container a new address, and a Sentinel that tracked the old one
# would look for the node where it no longer is. resolve-hostnames lets the config and the
# replicas' announcements name hosts; announce-hostnames makes Sentinel key its replicas by
# those names and report them (get-master-addr-by-name, SENTINEL replicas, events) instead
# of the address it resolved them to once.
set -eu
flavor="${LAB_FLAVOR:-valkey}"
server=""
for b in "${flavor}-server" valkey-server redis-server; do
  if command -v "$b" >/dev/null 2>&1; then server="$b"; break; fi
done
[ -n "$server" ] || { echo "start-sentinel: no valkey-server or redis-server in this image" >&2; exit 1; }
mkdir -p /data
conf=/data/sentinel.conf
# A config from before hostnames (it names nodes by address) is written anew.
if [ ! -s "$conf" ] || ! grep -q '^sentinel announce-hostnames yes' "$conf"; then
  {
    echo "port 26379"
    echo "dir /data"
    echo "sentinel resolve-hostnames yes"
    echo "sentinel announce-hostnames yes"
    if [ -n "${LAB_PASSWORD:-}" ]; then
      echo "requirepass $LAB_PASSWORD"
      echo "sentinel sentinel-pass $LAB_PASSWORD"
    fi
    # LAB_SENTINEL_GROUPS: "g1=redis-1 g2=redis-3 ..." (master name = initial master host)
    for g in ${LAB_SENTINEL_GROUPS:?}; do
      name="${g%%=*}"; host="${g#*=}"
      echo "sentinel monitor $name $host 6379 ${LAB_QUORUM:-2}"
      [ -z "${LAB_PASSWORD:-}" ] || echo "sentinel auth-pass $name $LAB_PASSWORD"
      echo "sentinel down-after-milliseconds $name ${LAB_DOWN_AFTER_MS:-3000}"
      echo "sentinel failover-timeout $name ${LAB_FAILOVER_TIMEOUT_MS:-10000}"
      echo "sentinel parallel-syncs $name ${LAB_PARALLEL_SYNCS:-1}"
    done
  } > "$conf"
fi
exec "$server" "$conf" --sentinel
