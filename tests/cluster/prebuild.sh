#!/usr/bin/env bash
# Prepare the test cluster's parts ahead of time, at idle CPU and I/O priority: its system packages
# and Kubernetes built from source (~8 min on 2 cores, once per machine). `make test` starts this in
# the background before the engine layer, so on a machine without the build it runs in the engine
# tests' idle time instead of delaying the cluster layer; up.sh waits for it to finish.
#   prebuild.sh --background   start it detached, if Kubernetes is not built yet (log: $PREBUILD_LOG)
#   prebuild.sh                do it now, holding $PREBUILD_LOCK
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/config.sh"; . "$HERE/lib.sh"

if [ "${1:-}" = "--background" ]; then
  bash "$HERE/build-k8s.sh" --check && exit 0
  mkdir -p "$PM_CACHE"
  setsid nice -n 19 ionice -c 3 bash "$0" </dev/null >"$PREBUILD_LOG" 2>&1 &
  log "building Kubernetes for the test cluster beside the tests, at idle priority (log: $PREBUILD_LOG)"
  exit 0
fi

mkdir -p "$PM_CACHE"
exec 8>"$PREBUILD_LOCK"
flock -n 8 || { log "another prebuild is running ($PREBUILD_LOCK)"; exit 0; }
bash "$HERE/install.sh"
bash "$HERE/build-k8s.sh"
