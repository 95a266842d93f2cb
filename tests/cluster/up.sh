#!/usr/bin/env bash
# Bring up the single-node test cluster: etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, dockerd, kubelet (dockershim), kube-proxy (iptables) and the cluster DNS server.
# Writes $KUBECONFIG_OUT and returns when the node is Ready and DNS answers.
# If the cluster already runs and is healthy this only rewrites the kubeconfig.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/config.sh"; . "$HERE/lib.sh"
lock_state

COMPONENTS="dockerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy cluster-dns"
ADMIN="$PKI/admin.kubeconfig"

api() {  # api PATH: GET from the API server as admin
  curl -sf --max-time 5 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$NODE_IP:$APISERVER_PORT$1"
}
node_ready() {
  api "/api/v1/nodes/$NODE_NAME" | python3 -c '
import json, sys
conditions = json.load(sys.stdin)["status"].get("conditions", [])
sys.exit(0 if any(c["type"] == "Ready" and c["status"] == "True" for c in conditions) else 1)'
}
dns_answers() {  # the kubernetes service's name resolves to its ClusterIP
  PYTHONPATH="$HERE" python3 -m clusterdns.query --server "$DNS_IP" --port "$DNS_PORT" \
    "kubernetes.default.svc.$CLUSTER_DOMAIN" | grep -qx "$KUBERNETES_SERVICE_IP"
}
healthy() {
  local c
  for c in $COMPONENTS; do ours_alive "$PIDS/$c.pid" || return 1; done
  node_ready && dns_answers
}
publish_kubeconfig() {
  mkdir -p "$(dirname "$KUBECONFIG_OUT")"
  install -m 0600 "$ADMIN" "$KUBECONFIG_OUT"
}

start_time=$SECONDS
if healthy 2>/dev/null; then
  publish_kubeconfig
  log "cluster already up; kubeconfig: $KUBECONFIG_OUT"
  exit 0
fi

# --- What the cluster is made of --------------------------------------------
"$PYTHON" -c 'import kubernetes' 2>/dev/null \
  || die "$PYTHON with the kubernetes client is needed for the cluster DNS server (make install)"
wait_for_prebuild
bash "$HERE/install.sh"
bash "$HERE/build-k8s.sh"

# Leftovers of an earlier run (processes, mounts, rules): gone before we start.
bash "$HERE/down.sh" --quiet
if awk -v root="$PM_STATE" 'index($5, root) == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
  die "mounts under $PM_STATE are left after cleanup; not removing the old state (see: grep $PM_STATE /proc/self/mountinfo)"
fi
rm -rf "$ETCD_DATA" "$KUBELET_ROOT" "$PM_STATE/dockershim" "$PM_STATE/kube-proxy" "$PIDS" "$LOGS.previous"
[ -d "$LOGS" ] && mv "$LOGS" "$LOGS.previous"
mkdir -p "$LOGS" "$PIDS" "$KUBELET_ROOT"
for d in /var/log/pods /var/log/containers; do   # kubelet's fixed log dirs; remove them on down if ours
  [ -d "$d" ] || { mkdir -p "$d"; touch "$PM_STATE/made-$(basename "$d")-log-dir"; }
done
bash "$HERE/pki.sh"

# --- Container runtime and the pause image ------------------------------------
bash "$HERE/docker-up.sh"
bash "$HERE/images.sh" pause

# --- Control plane ----------------------------------------------------------
start etcd /usr/bin/etcd --name "$NODE_NAME" --data-dir "$ETCD_DATA" \
  --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
  --initial-cluster "$NODE_NAME=http://127.0.0.1:$ETCD_PEER_PORT" \
  --log-level warn
wait_for "etcd" 30 curl -sf "http://127.0.0.1:$ETCD_CLIENT_PORT/health"

start kube-apiserver "$K8S_BIN/kube-apiserver" \
  --etcd-servers "http://127.0.0.1:$ETCD_CLIENT_PORT" \
  --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$APISERVER_PORT" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-certificate-authority "$PKI/ca.crt" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-key-file "$PKI/service-account.pub" \
  --service-account-signing-key-file "$PKI/service-account.key" \
  --service-account-issuer "https://kubernetes.default.svc.$CLUSTER_DOMAIN" \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true --profiling=false --v 1
wait_for "kube-apiserver" 60 api /readyz

start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
  --kubeconfig "$PKI/controller-manager.kubeconfig" \
  --authentication-kubeconfig "$PKI/controller-manager.kubeconfig" \
  --authorization-kubeconfig "$PKI/controller-manager.kubeconfig" \
  --bind-address 127.0.0.1 --port 0 --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file "$PKI/service-account.key" --root-ca-file "$PKI/ca.crt" \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --service-cluster-ip-range "$SERVICE_CIDR" --profiling=false --v 1

start kube-scheduler "$K8S_BIN/kube-scheduler" \
  --kubeconfig "$PKI/scheduler.kubeconfig" \
  --authentication-kubeconfig "$PKI/scheduler.kubeconfig" \
  --authorization-kubeconfig "$PKI/scheduler.kubeconfig" \
  --bind-address 127.0.0.1 --port 0 --leader-elect=false --profiling=false --v 1

# The cluster DNS server reads services and endpoints with the stock system:kube-dns role.
api /apis/rbac.authorization.k8s.io/v1/clusterrolebindings/privatemodel:cluster-dns >/dev/null || \
curl -sf --max-time 10 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
  -H 'Content-Type: application/json' -X POST \
  "https://$NODE_IP:$APISERVER_PORT/apis/rbac.authorization.k8s.io/v1/clusterrolebindings" \
  -d '{"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
       "metadata": {"name": "privatemodel:cluster-dns"},
       "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:kube-dns"},
       "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "privatemodel:cluster-dns"}]}' \
  >/dev/null || die "could not bind the cluster DNS server's role"

# --- Node -------------------------------------------------------------------
echo "nameserver $DNS_IP" >"$PM_STATE/resolv.conf"   # pods with dnsPolicy Default: no host search domains
cat >"$PM_STATE/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: $PKI/kubelet.crt
tlsPrivateKeyFile: $PKI/kubelet.key
cgroupDriver: cgroupfs
failSwapOn: false
oomScoreAdj: 0
clusterDNS: [$DNS_IP]
clusterDomain: $CLUSTER_DOMAIN
resolvConf: $PM_STATE/resolv.conf
volumePluginDir: $PM_STATE/kubelet-plugins
# Images cannot be pulled here: never garbage-collect them, never evict for disk.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%}
serializeImagePulls: false
EOF
start kubelet "$K8S_BIN/kubelet" --config "$PM_STATE/kubelet.yaml" \
  --kubeconfig "$PKI/node.kubeconfig" --root-dir "$KUBELET_ROOT" \
  --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
  --container-runtime docker --docker-endpoint "unix://$DOCKER_SOCK" \
  --experimental-dockershim-root-directory "$PM_STATE/dockershim" \
  --pod-infra-container-image "$PAUSE_IMAGE" --v 1

mkdir -p "$PM_STATE/kube-proxy"
cat >"$PM_STATE/kube-proxy/config.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $PKI/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
oomScoreAdj: 0
# Leave the machine's conntrack settings alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
start kube-proxy "$K8S_BIN/kube-proxy" --config "$PM_STATE/kube-proxy/config.yaml" --v 1

start cluster-dns env PYTHONPATH="$HERE" "$PYTHON" -m clusterdns \
  --kubeconfig "$PKI/cluster-dns.kubeconfig" --listen "$DNS_IP" --port "$DNS_PORT" --zone "$CLUSTER_DOMAIN"

# --- Ready ------------------------------------------------------------------
wait_for "node $NODE_NAME Ready" 90 node_ready
wait_for "cluster DNS" 30 dns_answers
wait_for "default service account" 30 api /api/v1/namespaces/default/serviceaccounts/default
publish_kubeconfig
log "cluster up in $((SECONDS - start_time))s; kubeconfig: $KUBECONFIG_OUT"
