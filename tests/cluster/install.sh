#!/usr/bin/env bash
# Install the system packages the test cluster needs (Debian, through the system's apt).
set -euo pipefail
. "$(dirname "$0")/config.sh"; . "$(dirname "$0")/lib.sh"

missing=()
for p in $APT_PACKAGES; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  log "apt: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
