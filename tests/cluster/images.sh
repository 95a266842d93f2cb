#!/usr/bin/env bash
# Images without a registry.
#   images.sh pause         the pod sandbox image, from the statically built pause binary
#   images.sh base          $BASE_IMAGE: `debootstrap --variant=minbase`, docker import (cached)
#   images.sh NAME...       images/NAME/Dockerfile -> privatemodel/NAME:$IMAGE_TAG
#   images.sh all           base, then every images/*/Dockerfile
# Builds run on the cluster's dockerd (started if needed), so the kubelet sees the images. The
# context is the repo root (see context.py), with the machine's extra CA certificates for the
# build stage only. With DOCKER_CMD set (e.g. DOCKER_CMD=docker BASE_IMAGE=debian:bookworm-slim,
# for kind) the builds use that docker instead and no base image is made.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/config.sh"; . "$HERE/lib.sh"

if [ -n "${DOCKER_CMD:-}" ]; then
  DOCKER=$DOCKER_CMD
else
  lock_state   # so that no cluster-up or -down restarts dockerd under a build
  bash "$HERE/docker-up.sh"
fi
have() { $DOCKER image inspect "$1" >/dev/null 2>&1; }

pause_image() {
  have "$PAUSE_IMAGE" && return
  local dir; dir=$(mktemp -d)
  install -m 0755 "$K8S_BIN/pause" "$dir/pause"
  tar -C "$dir" -c pause | $DOCKER import --change 'ENTRYPOINT ["/pause"]' - "$PAUSE_IMAGE" >/dev/null
  rm -rf "$dir"
  log "image $PAUSE_IMAGE imported"
}

base_image() {
  [ "${BASE_IMAGE%%:*}" = privatemodel/base ] || return 0   # a pullable base (kind): nothing to make
  have "$BASE_IMAGE" && return
  local tarball=$PM_CACHE/base-$DEBIAN_SUITE.tar
  if [ ! -s "$tarball" ]; then
    local root mirror; root=$(mktemp -d); mirror=$(debian_mirror)
    with_progress "debootstrap $DEBIAN_SUITE" "$PM_CACHE/debootstrap.log" \
      debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" "$mirror"
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    tar -C "$root" -c . >"$tarball.tmp" && mv "$tarball.tmp" "$tarball"
    rm -rf "$root"
  fi
  $DOCKER import --change 'CMD ["bash"]' "$tarball" "$BASE_IMAGE" >/dev/null
  log "image $BASE_IMAGE imported"
}

build() {
  local name=$1 dockerfile=images/$1/Dockerfile tag=privatemodel/$1:$IMAGE_TAG start=$SECONDS
  [ -f "$PM_REPO/$dockerfile" ] || die "no $dockerfile"
  log "building $tag"
  build_cmd() {
    python3 "$HERE/context.py" "$PM_REPO" \
      | $DOCKER build --build-arg "BASE_IMAGE=$BASE_IMAGE" -f "$dockerfile" -t "$tag" -
  }
  mkdir -p "$PM_REPO/build/images"
  with_progress "building $tag" "$PM_REPO/build/images/$name.log" build_cmd
  log "built $tag in $((SECONDS - start))s"
}

[ $# -gt 0 ] || set -- all
for what in "$@"; do
  case "$what" in
    pause) pause_image ;;
    base) base_image ;;
    all)
      base_image
      for f in "$PM_REPO"/images/*/Dockerfile; do build "$(basename "$(dirname "$f")")"; done ;;
    *) base_image; build "$what" ;;
  esac
done
