#!/usr/bin/env bash
# Makes rootful Podman answer the Docker API on /run/podman/podman.sock, so CI can run the
# same engine tests against Podman as against Docker. Idempotent: safe to run before every job.
# Needs root (CI and the dev machines run as root).
set -euo pipefail

SOCK_PATH=/run/podman/podman.sock
SOCK_URI="unix://${SOCK_PATH}"
LOG=/tmp/podman-service.log
PIDFILE=/run/podman/lab-service.pid
CONF=/etc/containers/containers.conf
MARKER="# managed by lab .ci/podman-setup.sh"
WAIT_SECS=30

log() { printf 'podman-setup: %s\n' "$*" >&2; }

if [[ $(id -u) -ne 0 ]]; then
    log "must run as root (it installs packages and starts the rootful Podman service)"
    exit 1
fi

# --- packages -------------------------------------------------------------------------------
# curl is here because the readiness check below speaks HTTP over the socket with it.
wanted=(podman runc netavark aardvark-dns uidmap slirp4netns fuse-overlayfs curl)
missing=()
for pkg in "${wanted[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$pkg")
    fi
done
if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
    log "packages present"
fi

# --- configuration --------------------------------------------------------------------------
# runc, not crun: crun refuses the hybrid cgroup v1/v2 layout of these hosts. cgroupfs because
# there is no systemd (PID 1 is not systemd in CI). The file events logger because journald is
# absent. netavark explicitly, because a leftover CNI config in /etc/cni/net.d would otherwise
# make Podman pick (and warn about) the CNI backend, whose plugins are not installed.
#
# Rootful Podman gives every container nofile and nproc limits of 1048576, which needs
# CAP_SYS_RESOURCE; sandboxes without it (like these CI machines) fail every start with
# "error setting rlimit type 7: operation not permitted". There, default to limits the
# service may grant: the hard nofile limit it inherits, and nproc no higher than 32768, the
# limit Podman puts on its own processes (conmon shows 32768 even when the shell has more).
has_cap_sys_resource() {
    local eff
    eff=$(awk '/^CapEff:/ {print $2}' /proc/self/status)
    (((16#$eff >> 24) & 1))
}
ulimits_block=""
if ! has_cap_sys_resource; then
    cap_limit() { # value, ceiling
        if [[ $1 == unlimited ]] || (($1 > $2)); then echo "$2"; else echo "$1"; fi
    }
    nofile=$(cap_limit "$(ulimit -Hn)" 1048576)
    nproc=$(cap_limit "$(ulimit -Hu)" 32768)
    ulimits_block="
[containers]
default_ulimits = [\"nofile=${nofile}:${nofile}\", \"nproc=${nproc}:${nproc}\"]
"
fi

desired="${MARKER}
${ulimits_block}
[engine]
runtime = \"runc\"
cgroup_manager = \"cgroupfs\"
events_logger = \"file\"

[network]
network_backend = \"netavark\""

config_changed=0
if [[ -f $CONF ]] && [[ "$(cat "$CONF")" == "$desired" ]]; then
    log "$CONF up to date"
else
    if [[ -f $CONF ]] && ! grep -qF "$MARKER" "$CONF"; then
        # Someone else's file: keep it once, next to ours, rather than losing it.
        cp -n "$CONF" "${CONF}.before-lab"
        log "kept the previous $CONF as ${CONF}.before-lab"
    fi
    mkdir -p "$(dirname "$CONF")"
    printf '%s\n' "$desired" >"$CONF"
    config_changed=1
    log "wrote $CONF"
fi

# --- service --------------------------------------------------------------------------------
ping_ok() {
    [[ -S $SOCK_PATH ]] &&
        [[ "$(curl -s --max-time 2 --unix-socket "$SOCK_PATH" http://d/_ping 2>/dev/null)" == "OK" ]]
}

if ping_ok && ((config_changed == 0)); then
    log "service already answers at $SOCK_URI"
    exit 0
fi

if ping_ok && ((config_changed == 1)); then
    # A running service keeps the config it started with; restart it only if we started it.
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        log "restarting the service (pid $pid) to apply the new configuration"
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    else
        log "service answers but was not started by this script; leaving it as it is"
        exit 0
    fi
fi

mkdir -p "$(dirname "$SOCK_PATH")"
# A socket file left by a dead service makes the new one fail to bind.
rm -f "$SOCK_PATH"
log "starting podman system service on $SOCK_URI (log: $LOG)"
nohup setsid podman system service --time=0 "$SOCK_URI" >>"$LOG" 2>&1 </dev/null &
echo $! >"$PIDFILE"

for ((i = 0; i < WAIT_SECS * 2; i++)); do
    if ping_ok; then
        log "service answers at $SOCK_URI after $((i / 2)) s"
        exit 0
    fi
    sleep 0.5
done

log "podman system service did not answer on $SOCK_URI within ${WAIT_SECS} s; last lines of $LOG:"
tail -n 20 "$LOG" >&2 || true
exit 1
