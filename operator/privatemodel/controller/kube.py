"""The few Kubernetes API calls the handlers make, on plain dicts (camelCase, as in manifests)."""
import hashlib
import json

import kubernetes
from kubernetes.client.exceptions import ApiException

from privatemodel.controller import consts, metrics
from privatemodel.controller.drift import covers

# kind -> (API class, the suffix of its *_namespaced_<suffix> methods)
_KINDS = {
    "ConfigMap": (kubernetes.client.CoreV1Api, "config_map"),
    "Secret": (kubernetes.client.CoreV1Api, "secret"),
    "Service": (kubernetes.client.CoreV1Api, "service"),
    "Pod": (kubernetes.client.CoreV1Api, "pod"),
    "StatefulSet": (kubernetes.client.AppsV1Api, "stateful_set"),
    "Deployment": (kubernetes.client.AppsV1Api, "deployment"),
    "Job": (kubernetes.client.BatchV1Api, "job"),
    "NetworkPolicy": (kubernetes.client.NetworkingV1Api, "network_policy"),
    "Event": (kubernetes.client.CoreV1Api, "event"),
}
# PodDisruptionBudget is policy/v1 from Kubernetes 1.21 and only policy/v1beta1 before (the
# typed client knows v1 only): Kube picks the version the API server offers.
PDB_KIND, PDB_GROUP, PDB_PLURAL, PDB_VERSIONS = "PodDisruptionBudget", "policy", "poddisruptionbudgets", ("v1", "v1beta1")
# Deleted with the PrivateModel, in this order: drivers first, then the players. Their pods
# (and the Deployment's ReplicaSet) follow through the garbage collector, and so do the TLS
# Secrets: the operator may only create Secrets, never read, list or delete them.
CHILD_KINDS = ("Deployment", "Job", "StatefulSet", PDB_KIND, "Service", "ServiceMonitor", "ConfigMap", "NetworkPolicy")
# The children that run pods: torn down first. A pod still starting whose ConfigMap went first
# cannot mount it and took minutes to go (Kubernetes 1.20 kubelet, seen in e2e).
WORKLOAD_KINDS = ("Deployment", "Job", "StatefulSet")
# A Job's pod template cannot change: a Job is created, or deleted and replaced under a new name.
IMMUTABLE_KINDS = frozenset({"Job"})
# Custom resources take no strategic merge patch (the API server answers 415): a JSON merge patch,
# which replaces lists whole.
CUSTOM_KINDS = frozenset({"ServiceMonitor"})
# (connect, read) seconds. Without it a call on a pooled connection that died without a close
# waits for ever, and so does every later reconcile tick of that PrivateModel.
REQUEST_TIMEOUT = (10, 30)


def connect() -> "Kube":
    """In a pod: its service account. Elsewhere (kopf run on a laptop): the current kubeconfig."""
    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        kubernetes.config.load_kube_config()
    return Kube(kubernetes.client.ApiClient())


def label_selector(labels: dict) -> str:
    return ",".join(f"{key}={value}" for key, value in sorted(labels.items()))


def manifest_hash(manifest: dict) -> str:
    return hashlib.sha256(json.dumps(manifest, sort_keys=True).encode()).hexdigest()[:16]


def patch_content_type(kind: str) -> str:
    """Strategic merge for built-in kinds: lists such as containers merge by name, as `kubectl apply` does."""
    if kind in CUSTOM_KINDS:
        return "application/merge-patch+json"
    return "application/strategic-merge-patch+json"


class _VersionedKind:
    """The *_namespaced_object calls of a built-in kind whose version depends on the cluster, made
    through the generic custom-objects client (it builds the same /apis/GROUP/VERSION/... paths)."""

    def __init__(self, api_client, group: str, version: str, plural: str):
        self._api = kubernetes.client.CustomObjectsApi(api_client)
        self._resource = (group, version)
        self._plural = plural

    def read_namespaced_object(self, name, namespace, **kwargs):
        return self._api.get_namespaced_custom_object(*self._resource, namespace, self._plural, name, **kwargs)

    def list_namespaced_object(self, namespace, **kwargs):
        return self._api.list_namespaced_custom_object(*self._resource, namespace, self._plural, **kwargs)

    def create_namespaced_object(self, namespace, body, **kwargs):
        return self._api.create_namespaced_custom_object(*self._resource, namespace, self._plural, body, **kwargs)

    def patch_namespaced_object(self, name, namespace, body, **kwargs):
        return self._api.patch_namespaced_custom_object(*self._resource, namespace, self._plural, name, body, **kwargs)

    def delete_namespaced_object(self, name, namespace, **kwargs):
        return self._api.delete_namespaced_custom_object(*self._resource, namespace, self._plural, name, **kwargs)


def served_version(api_client, group: str, versions: tuple[str, ...]) -> str:
    """The first of `versions` (newest first) that the API server serves for `group`."""
    groups = kubernetes.client.ApisApi(api_client).get_api_versions(_request_timeout=REQUEST_TIMEOUT).groups
    served = {v.version for g in groups if g.name == group for v in g.versions}
    for version in versions:
        if version in served:
            return version
    raise RuntimeError(f"the API server serves none of {group}/{', '.join(versions)}")


class Kube:
    def __init__(self, api_client):
        self._apis = {kind: (api_class(api_client), suffix) for kind, (api_class, suffix) in _KINDS.items()}
        self.pdb_api_version = f"{PDB_GROUP}/{served_version(api_client, PDB_GROUP, PDB_VERSIONS)}"
        self._apis[PDB_KIND] = (_VersionedKind(api_client, *self.pdb_api_version.split("/"), PDB_PLURAL), "object")
        self._apis["ServiceMonitor"] = (
            _VersionedKind(api_client, *consts.SERVICE_MONITOR_API_VERSION.split("/"), "servicemonitors"), "object")

    def _call(self, kind: str, verb: str, *args, **kwargs):
        api, suffix = self._apis[kind]
        metrics.API_REQUESTS.labels(verb).inc()
        response = getattr(api, f"{verb}_namespaced_{suffix}")(*args, _preload_content=False,
                                                               _request_timeout=REQUEST_TIMEOUT, **kwargs)
        return json.loads(response.data or b"null")

    def get(self, kind: str, namespace: str, name: str) -> dict | None:
        try:
            return self._call(kind, "read", name, namespace)
        except ApiException as error:
            if error.status == 404:
                return None
            raise

    def events(self, namespace: str, involved_name: str) -> list[dict]:
        """The events about one object of the namespace (e.g. why a pod cannot start)."""
        return self._call("Event", "list", namespace, field_selector=f"involvedObject.name={involved_name}")["items"]

    def list(self, kind: str, namespace: str, labels: dict) -> list[dict]:
        """[] also when the cluster has no such kind (a CRD such as ServiceMonitor not installed)."""
        try:
            return self._call(kind, "list", namespace, label_selector=label_selector(labels))["items"]
        except ApiException as error:
            if error.status == 404:
                return []
            raise

    def create(self, manifest: dict) -> dict:
        return self._call(manifest["kind"], "create", manifest["metadata"]["namespace"], manifest)

    def delete(self, kind: str, namespace: str, name: str, foreground: bool = False) -> bool:
        """Delete, letting the garbage collector take what it owns; False if it was already gone.
        In the foreground, the object stays (with a deletionTimestamp) until what it owns is gone."""
        try:
            self._call(kind, "delete", name, namespace, propagation_policy="Foreground" if foreground else "Background")
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        return True

    def apply(self, manifest: dict) -> str:
        """Create, or patch when the manifest differs from the one applied last ("created",
        "updated") or when a field it sets was changed by hand ("reverted"), else "unchanged".
        Fields the API server or users add are left alone (see drift.py)."""
        meta = manifest["metadata"]
        annotations = meta.setdefault("annotations", {})
        annotations.pop(consts.ANNOTATION_APPLIED_HASH, None)
        applied = manifest_hash(manifest)
        annotations[consts.ANNOTATION_APPLIED_HASH] = applied
        live = self.get(manifest["kind"], meta["namespace"], meta["name"])
        if live is None:
            self.create(manifest)
            return "created"
        same_manifest = (live["metadata"].get("annotations") or {}).get(consts.ANNOTATION_APPLIED_HASH) == applied
        if manifest["kind"] in IMMUTABLE_KINDS or (same_manifest and covers(live, manifest)):
            return "unchanged"
        self._call(manifest["kind"], "patch", meta["name"], meta["namespace"], manifest,
                   _content_type=patch_content_type(manifest["kind"]))
        return "updated" if not same_manifest else "reverted"
