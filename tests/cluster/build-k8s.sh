#!/usr/bin/env bash
# Build the Kubernetes server binaries from Debian's source package `kubernetes`, with Go 1.15
# from Debian bullseye and the kubelet changes in kubelet.patch. The result is cached by version
# in $K8S_BIN (outside the repo): when it is there (and built with the same patch) this does nothing.
#   build-k8s.sh --check   exit 0 if it is built, 1 if not
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/config.sh"; . "$HERE/lib.sh"

stamp=$K8S_BIN/.built
want="$K8S_DEB_VERSION $(sha256sum "$HERE/kubelet.patch" | cut -c1-16)"
if [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
[ "${1:-}" = "--check" ] && exit 1

start=$SECONDS
work=$PM_CACHE/build-$K8S_VERSION
rm -rf "$work"; mkdir -p "$work"
private_apt_setup

# Go 1.15: the bullseye .debs, extracted (not installed).
if [ ! -x "$GO_ROOT/bin/go" ]; then
  log "go: downloading $GO_PACKAGES ($GO_SUITE)"
  rm -rf "$PM_CACHE/go-1.15"; mkdir -p "$work/debs"
  (cd "$work/debs" && private_apt download -qq $GO_PACKAGES)
  for deb in "$work"/debs/*.deb; do dpkg-deb -x "$deb" "$PM_CACHE/go-1.15"; done
fi
"$GO_ROOT/bin/go" version >&2

# The source package (upstream tree with vendor/ and Debian's patches applied), then ours.
log "kubernetes: fetching the source package $K8S_DEB_VERSION ($DEBIAN_SUITE)"
# (apt checks the files against the signed Sources index; dpkg-source's own gpgv check of the
# .dsc has no keyring here and only warns, into the log.)
(cd "$work" && private_apt source -qq --download-only "kubernetes=$K8S_DEB_VERSION" >/dev/null \
   && dpkg-source -x "kubernetes_${K8S_DEB_VERSION}.dsc" src >"$work/unpack.log" 2>&1) \
   || { cat "$work/unpack.log" >&2 2>/dev/null; die "could not fetch or unpack the kubernetes source package"; }
patch -d "$work/src" -p1 --forward <"$HERE/kubelet.patch" >/dev/null || die "kubelet.patch does not apply"

cat >"$work/version" <<VER
KUBE_GIT_VERSION='$K8S_VERSION'
KUBE_GIT_MAJOR='$(echo "$K8S_VERSION" | cut -d. -f1 | tr -d v)'
KUBE_GIT_MINOR='$(echo "$K8S_VERSION" | cut -d. -f2)'
KUBE_GIT_COMMIT='debian-$K8S_DEB_VERSION'
KUBE_GIT_TREE_STATE='clean'
VER

what=""
for c in $K8S_COMPONENTS; do what+=" cmd/$c"; done
log "kubernetes: building$what (~6-13 min on 2 cores, once per machine)"
export PATH="$GO_ROOT/bin:$PATH" GOROOT="$GO_ROOT" GOPATH="$work/gopath" GOCACHE="$work/gocache" \
       GOPROXY=off KUBE_GIT_VERSION_FILE="$work/version" \
       KUBE_BUILD_PLATFORMS=linux/amd64
PROGRESS_EVERY=60 with_progress "kubernetes build" "$work/build.log" make -C "$work/src" WHAT="${what# }"

mkdir -p "$K8S_BIN"
for c in $K8S_COMPONENTS; do
  install -m 0755 "$work/src/_output/local/bin/linux/amd64/$c" "$K8S_BIN/$c"
done
# The pod sandbox ("pause") binary, static, from the same tree.
gcc -Os -Wall -static -DVERSION="v$PAUSE_VERSION-$K8S_VERSION" -o "$K8S_BIN/pause" "$work/src/build/pause/linux/pause.c"
"$K8S_BIN/kubelet" --version >&2
echo "$want" >"$stamp"
rm -rf "$work"
log "kubernetes: built in $(( (SECONDS - start) / 60 ))m$(( (SECONDS - start) % 60 ))s -> $K8S_BIN"
