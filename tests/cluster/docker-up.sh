#!/usr/bin/env bash
# Start the cluster's own dockerd (Debian's docker.io) with its data, exec root, socket and pid
# file in the state dir. Used by cluster-up and by `make images`. Does nothing if it runs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/config.sh"; . "$HERE/lib.sh"
lock_state

if ours_alive "$PIDS/dockerd.pid" && $DOCKER info >/dev/null 2>&1; then exit 0; fi
bash "$HERE/install.sh"
mkdir -p "$DOCKER_ROOT" "$DOCKER_EXEC" "$PIDS" "$LOGS"
# Remember what this machine had before, so cluster-down removes only what we made.
ip link show "$BRIDGE" >/dev/null 2>&1 || touch "$PM_STATE/made-bridge"
[ -e "$PM_STATE/ip_forward.before" ] || sysctl -n net.ipv4.ip_forward >"$PM_STATE/ip_forward.before"
echo '{}' >"$PM_STATE/docker-daemon.json"   # not the machine's /etc/docker/daemon.json
rm -f "$PIDS/dockerd.pid"
start dockerd /usr/sbin/dockerd \
  --config-file "$PM_STATE/docker-daemon.json" \
  --data-root "$DOCKER_ROOT" --exec-root "$DOCKER_EXEC" --pidfile "$DOCKER_EXEC/dockerd.pid" \
  -H "unix://$DOCKER_SOCK" --bip "$BRIDGE_CIDR" \
  --storage-driver overlay2 --exec-opt native.cgroupdriver=cgroupfs \
  --oom-score-adjust 0 --log-driver json-file --log-opt max-size=10m --userland-proxy=false
wait_for "dockerd" 60 $DOCKER info
log "dockerd ready: $DOCKER_SOCK (bridge $BRIDGE $BRIDGE_CIDR)"
