#!/usr/bin/env bash
# The cluster's certificates (openssl, ECDSA P-256) and kubeconfigs, in $PKI. One CA signs all.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/config.sh"; . "$HERE/lib.sh"

# Made once and kept across restarts (clients keep working), unless the facts they name change.
facts="$NODE_NAME $NODE_IP $KUBERNETES_SERVICE_IP $CLUSTER_DOMAIN $APISERVER_PORT"
[ "$(cat "$PKI/.made-for" 2>/dev/null)" = "$facts" ] && exit 0
rm -rf "$PKI"; mkdir -p "$PKI"; cd "$PKI"
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

newkey ca.key
openssl req -x509 -new -key ca.key -days 3650 -subj "/CN=privatemodel-test-cluster-ca" -out ca.crt

# cert NAME SUBJECT USAGE [SANS]: a key and a certificate signed by the CA.
cert() {
  local name=$1 subject=$2 usage=$3 sans=${4:-}
  newkey "$name.key"
  openssl req -new -key "$name.key" -subj "$subject" -out "$name.csr"
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 365 \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

cert apiserver "/CN=kube-apiserver" serverAuth \
  "IP:$NODE_IP,IP:127.0.0.1,IP:$KUBERNETES_SERVICE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN"
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" clientAuth
cert kubelet "/CN=$NODE_NAME" serverAuth "IP:$NODE_IP,IP:127.0.0.1,DNS:$NODE_NAME"
cert node "/O=system:nodes/CN=system:node:$NODE_NAME" clientAuth
cert admin "/O=system:masters/CN=privatemodel-admin" clientAuth
cert controller-manager "/CN=system:kube-controller-manager" clientAuth
cert scheduler "/CN=system:kube-scheduler" clientAuth
cert kube-proxy "/CN=system:kube-proxy" clientAuth
cert cluster-dns "/CN=privatemodel:cluster-dns" clientAuth
newkey service-account.key
openssl pkey -in service-account.key -pubout -out service-account.pub 2>/dev/null

# kubeconfig NAME: $PKI/NAME.kubeconfig with the CA, NAME's certificate and key embedded.
kubeconfig() {
  local name=$1 b64="base64 -w0"
  cat >"$name.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: privatemodel
  cluster:
    server: https://$NODE_IP:$APISERVER_PORT
    certificate-authority-data: $($b64 ca.crt)
users:
- name: $name
  user:
    client-certificate-data: $($b64 "$name.crt")
    client-key-data: $($b64 "$name.key")
contexts:
- name: privatemodel
  context: {cluster: privatemodel, user: $name}
current-context: privatemodel
KC
}
for who in admin controller-manager scheduler node kube-proxy cluster-dns; do kubeconfig "$who"; done
chmod 600 ./*.key ./*.kubeconfig
echo "$facts" >.made-for
