# One place for every fact of the test cluster: versions, paths, addresses, ports.
# Sourced by the scripts beside it (bash). Any value can be overridden from the environment.

# Repository root (tests/cluster/..).
PM_REPO=${PM_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

# --- Versions ---------------------------------------------------------------
# Debian bookworm's source package `kubernetes` (upstream v1.20.2 with vendor/).
K8S_DEB_VERSION=${K8S_DEB_VERSION:-1.20.5+really1.20.2-1.1+deb12u1}
K8S_VERSION=${K8S_VERSION:-v1.20.2}
# Go that builds it: Debian bullseye's golang-1.15 (.debs extracted, not installed).
GO_SUITE=${GO_SUITE:-bullseye}
GO_PACKAGES="golang-1.15-go golang-1.15-src"
# The Debian release the base image and the sources come from.
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
# Server binaries built from the tree.
K8S_COMPONENTS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy"
# System packages the cluster needs (Debian names).
APT_PACKAGES="docker.io etcd-server iptables conntrack iproute2 ethtool socat util-linux mount kmod curl openssl debootstrap dpkg-dev patch xz-utils gcc libc6-dev make rsync"

# --- Paths ------------------------------------------------------------------
# Machine-wide cache (survives cluster-down and new clones): built binaries, Go, apt lists.
PM_CACHE=${PM_CACHE:-/var/cache/privatemodel}
K8S_BIN=$PM_CACHE/k8s-$K8S_VERSION/bin
GO_ROOT=$PM_CACHE/go-1.15/usr/lib/go-1.15
PM_APT=$PM_CACHE/apt                      # private apt config: own sources.list, lists, archives
PREBUILD_LOCK=$PM_CACHE/prebuild.lock      # held while prebuild.sh runs (up.sh waits for it)
PREBUILD_LOG=$PM_CACHE/prebuild.log
# All state of the running cluster: pids, logs, certs, etcd data, docker and kubelet roots.
PM_STATE=${PM_STATE:-/var/lib/privatemodel/cluster}
PKI=$PM_STATE/pki
LOGS=$PM_STATE/logs
PIDS=$PM_STATE/pids
DOCKER_ROOT=$PM_STATE/docker              # --data-root (images stay cached across cluster-down)
DOCKER_EXEC=$PM_STATE/docker-exec         # --exec-root
DOCKER_SOCK=$PM_STATE/docker.sock
KUBELET_ROOT=$PM_STATE/kubelet            # kubelet --root-dir (pod volumes are mounted here)
ETCD_DATA=$PM_STATE/etcd
# The kubeconfig handed to users and tests (repo-local, git-ignored).
KUBECONFIG_OUT=${KUBECONFIG_OUT:-$PM_REPO/build/cluster/kubeconfig}
PYTHON=${PYTHON:-$PM_REPO/.venv/bin/python}

# --- Network ----------------------------------------------------------------
BRIDGE=docker0
BRIDGE_CIDR=${BRIDGE_CIDR:-172.17.0.1/16}    # dockerd --bip; pods get addresses in it
NODE_IP=${BRIDGE_CIDR%/*}                    # node IP = docker0's address
POD_CIDR=172.17.0.0/16
SERVICE_CIDR=10.96.0.0/16
KUBERNETES_SERVICE_IP=10.96.0.1
CLUSTER_DOMAIN=cluster.local
DNS_IP=$NODE_IP                              # the cluster DNS server listens on the node IP
DNS_PORT=53
ETCD_CLIENT_PORT=2379
ETCD_PEER_PORT=2380
APISERVER_PORT=6443
NODE_NAME=${NODE_NAME:-privatemodel-node}

# --- Images -----------------------------------------------------------------
BASE_IMAGE=privatemodel/base:$DEBIAN_SUITE
PAUSE_VERSION=3.4                      # build/pause in the v1.20.2 tree
PAUSE_IMAGE=privatemodel/pause:$PAUSE_VERSION
IMAGE_TAG=${IMAGE_TAG:-dev}

# --- Commands ---------------------------------------------------------------
# Debian's docker client matches its daemon (the preinstalled /usr/local/bin/docker is newer).
DOCKER="/usr/bin/docker -H unix://$DOCKER_SOCK"
