# Helpers shared by the cluster scripts (bash). Source config.sh first.

log() { printf '[cluster %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Run a long command in the background and print a progress line with the elapsed time
# every PROGRESS_EVERY seconds until it ends; returns its exit status. Output goes to LOGFILE.
#   with_progress "what" LOGFILE cmd args...
with_progress() {
  local what=$1 logfile=$2; shift 2
  local start=$SECONDS pid rc every=${PROGRESS_EVERY:-30}
  "$@" >"$logfile" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( (SECONDS - start) % every == 0 )); then
      log "$what: $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s elapsed (log: $logfile)"
    fi
  done
  rc=0; wait "$pid" || rc=$?   # not `wait; rc=$?`: under set -e a failure would exit unreported
  if (( rc != 0 )); then log "$what failed (exit $rc); last lines of $logfile:"; tail -n 30 "$logfile" >&2; fi
  return $rc
}

# The Debian mirrors this machine's apt uses (deb822 or one-line format), for the private apt
# config and debootstrap.
debian_mirror() {
  local uri
  uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n 1 | tr -d ' ')
  echo "${uri:-http://deb.debian.org/debian}"
}
debian_security_mirror() {
  local uri
  uri=$(grep -hE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null \
        | grep -oE 'https?://[^ ]+/debian-security/?' | head -n 1)
  echo "${uri:-http://deb.debian.org/debian-security}"
}

# apt-get with the project's private config: its own sources.list, lists, cache and an empty
# dpkg status, so the system's apt setup is left untouched. Used only to download.
private_apt() {
  apt-get -q \
    -o Dir::Etc::SourceList="$PM_APT/sources.list" \
    -o Dir::Etc::SourceParts="$PM_APT/sources.list.d" \
    -o Dir::Etc::Preferences="$PM_APT/preferences" \
    -o Dir::Etc::PreferencesParts="$PM_APT/preferences.d" \
    -o Dir::State::Lists="$PM_APT/lists" \
    -o Dir::State::Status="$PM_APT/status" \
    -o Dir::State::extended_states="$PM_APT/extended_states" \
    -o Dir::Cache="$PM_APT/cache" \
    -o Acquire::Languages=none \
    -o APT::Sandbox::User=root \
    "$@"
}

private_apt_setup() {
  local mirror security keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  mirror=$(debian_mirror); security=$(debian_security_mirror)
  mkdir -p "$PM_APT"/{sources.list.d,preferences.d,lists/partial,cache/archives/partial}
  touch "$PM_APT/status" "$PM_APT/preferences"
  cat >"$PM_APT/sources.list" <<SRC
deb [signed-by=$keyring] $mirror $GO_SUITE main
deb-src [signed-by=$keyring] $mirror $DEBIAN_SUITE main
deb-src [signed-by=$keyring] $mirror $DEBIAN_SUITE-updates main
deb-src [signed-by=$keyring] $security $DEBIAN_SUITE-security main
SRC
  # Refresh the lists at most once a day.
  if [ -z "$(find "$PM_APT/lists" -maxdepth 1 -name '*Sources*' -mtime -1 2>/dev/null)" ]; then
    log "private apt: update ($mirror: $GO_SUITE binaries, $DEBIAN_SUITE sources)"
    private_apt update -qq >/dev/null || die "private apt update failed"
  fi
}

# start NAME CMD...: run CMD as a daemon in its own session, logging to $LOGS/NAME.log; the
# process writes its own pid to $PIDS/NAME.pid before it execs CMD.
start() {
  local name=$1; shift
  mkdir -p "$LOGS" "$PIDS"
  setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDS/$name.pid" "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
  local i; for i in $(seq 50); do [ -s "$PIDS/$name.pid" ] && break; sleep 0.1; done
  log "started $name (pid $(cat "$PIDS/$name.pid"), log $LOGS/$name.log)"
}

# wait_for WHAT SECONDS CMD...: retry CMD every 0.5 s until it succeeds, or fail after SECONDS.
wait_for() {
  local what=$1 limit=$2 start=$SECONDS; shift 2
  until "$@" >/dev/null 2>&1; do
    if (( SECONDS - start >= limit )); then
      log "$what: not ready after ${limit}s; recent logs:"
      tail -n 5 "$LOGS"/*.log >&2 2>/dev/null
      die "$what: not ready after ${limit}s"
    fi
    sleep 0.5
  done
}

# Is process $1 running (a zombie waiting to be reaped is not)?
running() { [ -n "$1" ] && [ -e "/proc/$1" ] && ! grep -qE '^[0-9]+ \(.*\) Z' "/proc/$1/stat" 2>/dev/null; }

# Is the process in pid file $1 alive and one of ours (its command line names our state or
# binaries, so a reused pid is never taken for ours)?
ours_alive() {
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  running "$pid" || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qE "$PM_STATE|$K8S_BIN"
}

# Wait for a prebuild.sh still running (make test starts one beside the engine layer), with a
# progress line a minute.
wait_for_prebuild() {
  mkdir -p "$PM_CACHE"
  exec 8>"$PREBUILD_LOCK"
  if ! flock -n 8; then
    log "waiting for the build started beside the tests (log: $PREBUILD_LOG)"
    until flock -w 60 8; do log "still building: $(tail -n 1 "$PREBUILD_LOG" 2>/dev/null)"; done
  fi
  exec 8>&-
}

# One script at a time changes the cluster (up, down, dockerd, image builds): take the state
# lock, unless a calling script already holds it. The daemons never inherit it (start closes 9).
lock_state() {
  [ -n "${PM_LOCKED:-}" ] && return 0
  mkdir -p "$PM_STATE"
  exec 9>"$PM_STATE/lock"
  flock -n 9 || { log "waiting for another cluster script to finish ($PM_STATE/lock)"; flock 9; }
  export PM_LOCKED=1
}
