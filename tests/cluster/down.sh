#!/usr/bin/env bash
# Stop the test cluster and remove what it made on the machine: its processes (by the pids in
# its pid files), pod containers, mounts under the state dir, iptables rules and chains
# (KUBE-*, DOCKER*, docker0's), the docker0 bridge if dockerd made it, and its cgroups.
# Keeps the built binaries, docker's images and the logs. Idempotent; safe after a failed up.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/config.sh"; . "$HERE/lib.sh"
lock_state
QUIET=false; [ "${1:-}" = --quiet ] && QUIET=true
say() { $QUIET || log "$@"; }

# stop NAME: TERM the process in $PIDS/NAME.pid if it is ours, wait, then KILL.
stop() {
  local name=$1 file=$PIDS/$1.pid pid i
  if ours_alive "$file"; then
    pid=$(cat "$file")
    say "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 300); do running "$pid" || break; sleep 0.1; done
    running "$pid" && { say "$name did not stop in 30s: KILL"; kill -KILL "$pid"; sleep 0.5; }
  fi
  rm -f "$file"
}

# Kubernetes first (so nothing recreates pods), then the API side.
for c in cluster-dns kube-proxy kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do
  stop "$c"
done

# Pod containers go before their runtime, so dockerd exits at once and leaves nothing running.
if ours_alive "$PIDS/dockerd.pid"; then
  ids=$($DOCKER ps -aq 2>/dev/null)
  [ -n "$ids" ] && { say "removing $(echo "$ids" | wc -l) containers"; $DOCKER rm -f $ids >/dev/null 2>&1; }
fi
stop dockerd

# Leftovers of a runtime that was killed: containerd and the containers' init processes (pid files
# under our exec root), their shims, and processes still in the cgroups our kubelet and dockerd made.
for file in $(find "$DOCKER_EXEC" -name '*.pid' 2>/dev/null); do
  pid=$(cat "$file" 2>/dev/null) || continue
  running "$pid" || continue
  case "$(basename "$file")" in
    init.pid) grep -q "$(basename "$(dirname "$file")")" "/proc/$pid/cgroup" 2>/dev/null || continue ;;
    *) tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "$PM_STATE" || continue ;;
  esac
  say "killing leftover $(basename "$file" .pid) (pid $pid)"
  kill -KILL "$pid" 2>/dev/null
done
# containerd's shims write no pid file; their command line names our exec root.
for cmdline in /proc/[0-9]*/cmdline; do
  if tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -q "^/usr/bin/containerd-shim[^ ]* .*-address $DOCKER_EXEC/"; then
    pid=$(basename "$(dirname "$cmdline")"); say "killing leftover containerd shim (pid $pid)"; kill -KILL "$pid" 2>/dev/null
  fi
done
for hier in /sys/fs/cgroup/*/; do
  for group in "$hier"kubepods "$hier"docker; do
    [ -d "$group" ] || continue
    for pid in $(find "$group" -name cgroup.procs -exec cat {} + 2>/dev/null); do
      say "killing leftover container process $pid"; kill -KILL "$pid" 2>/dev/null
    done
  done
done
sleep 0.5

# Mounts under the state dir (pod volumes, overlay layers, network namespaces), deepest first.
mounts() {
  awk -v root="$PM_STATE" '{ gsub(/\\040/, " ", $5); if (index($5, root) == 1) print $5 }' /proc/self/mountinfo \
    | awk '{ print length, $0 }' | sort -rn | cut -d' ' -f2-
}
while IFS= read -r m; do
  [ -n "$m" ] || continue
  umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || say "could not unmount $m"
done < <(mounts)

# iptables (and ip6tables): rules that jump to our chains or name the bridge, then the chains.
ours='^-N (KUBE-|DOCKER)'
for ipt in iptables ip6tables; do
  command -v "$ipt" >/dev/null || continue
  for table in filter nat mangle raw; do
    $ipt -t "$table" -S >/dev/null 2>&1 || continue
    $ipt -t "$table" -S 2>/dev/null | grep '^-A ' | grep -vE '^-A (KUBE-|DOCKER)' \
      | grep -E -- "-j (KUBE-|DOCKER)|[ !]$BRIDGE( |\$)" | sed 's/^-A /-D /' \
      | while IFS= read -r rule; do eval "$ipt -t $table $rule" || say "could not delete: $ipt -t $table $rule"; done
    chains=$($ipt -t "$table" -S 2>/dev/null | grep -E "$ours" | cut -d' ' -f2)
    for chain in $chains; do $ipt -t "$table" -F "$chain"; done
    for chain in $chains; do $ipt -t "$table" -X "$chain" || say "could not delete chain $table/$chain"; done
  done
done

# Interfaces: veths still on the bridge, and the bridge if dockerd made it.
if ip link show "$BRIDGE" >/dev/null 2>&1; then
  for veth in $(ip -o link show master "$BRIDGE" | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link delete "$veth" 2>/dev/null
  done
  if [ -e "$PM_STATE/made-bridge" ]; then
    say "removing bridge $BRIDGE"; ip link delete "$BRIDGE"
  fi
fi
rm -f "$PM_STATE/made-bridge"

# Empty cgroups made by the kubelet (kubepods) and dockerd (docker), deepest first.
for hier in /sys/fs/cgroup/*/; do
  for group in "$hier"kubepods "$hier"docker; do
    [ -d "$group" ] && find "$group" -depth -type d -exec rmdir {} \; 2>/dev/null
  done
done

# The kubelet's fixed pod log dirs, if the cluster made them.
for d in pods containers; do
  if [ -e "$PM_STATE/made-$d-log-dir" ]; then rm -rf "/var/log/$d"; rm -f "$PM_STATE/made-$d-log-dir"; fi
done
# IP forwarding as it was before dockerd turned it on.
if [ -s "$PM_STATE/ip_forward.before" ]; then
  sysctl -qw net.ipv4.ip_forward="$(cat "$PM_STATE/ip_forward.before")"; rm -f "$PM_STATE/ip_forward.before"
fi
rm -f "$PM_STATE"/*.sock
say "cluster down"
exit 0
