"""Pieces every runtime pod shares: locked-down security, the hostmap and the party's own TLS
Secret (one read-only directory), a writable /tmp, the mesh port."""
import copy
from collections.abc import Sequence

from privatemodel import contract
from privatemodel.controller import consts, naming
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import child_name
from privatemodel.controller.spec import PodSettings

CONFIG_VOLUME = "config"
TMP_VOLUME = "tmp"
MESH_PORT_NAME = "mesh"
# Readable through fsGroup by the runtime user only; the kubelet keeps files owned by root.
CONFIG_MODE = 0o440


def metadata(name: str, namespace: str, labels: dict, annotations: dict | None = None) -> dict:
    meta = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return meta


def component_metadata(model_name: str, namespace: str, component: str, triple: int = 0) -> dict:
    """A child named and labelled after its model, triple and component, e.g. mnist-players, mnist-t1-players."""
    names = naming.Triple(model_name, triple)
    return metadata(names.name(component), namespace, names.labels(component))


def runtime_container(
    name: str,
    command: list[str],
    settings: PodSettings,
    defaults: OperatorDefaults,
    mounts: list[dict],
    default_resources: dict,
    env: Sequence[dict] = (),
    ports: Sequence[dict] = (),
    **fields,
) -> dict:
    """A container of the runtime image that reads its config directory, can write only /tmp and
    listens on the mesh port (its peers reach its TensorFlow server only through there).
    Resources: the PrivateModel's, else the operator's `default_resources` for this kind of pod."""
    return {
        "name": name,
        "image": settings.image or defaults.runtime_image,
        "imagePullPolicy": defaults.image_pull_policy,
        "command": command,
        # TensorFlow and Keras keep caches under HOME; the root filesystem is read-only.
        "env": [*env, {"name": "HOME", "value": consts.TMP_DIR}],
        "resources": copy.deepcopy(settings.resources or default_resources),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "ports": [{"name": MESH_PORT_NAME, "containerPort": contract.MESH_PORT, "protocol": "TCP"}, *ports],
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": consts.CONFIG_DIR, "readOnly": True},
            *mounts,
            {"name": TMP_VOLUME, "mountPath": consts.TMP_DIR},
        ],
        **fields,
    }


def runtime_pod_spec(
    prefix: str,
    container: dict,
    settings: PodSettings,
    volumes: list[dict],
    tls_secret: str,
    affinity: dict | None = None,
    **fields,
) -> dict:
    """A pod that cannot reach the Kubernetes API (no token), runs as an unprivileged user and
    sees only its own party's key (the Secret `tls_secret`), under CONFIG_DIR/tls.
    `prefix`: its triple's (naming.Triple.prefix), whose hostmap it reads."""
    pod = {
        "automountServiceAccountToken": False,
        # Service env vars would only add noise; runtime pods find each other through the hostmap.
        "enableServiceLinks": False,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": consts.RUNTIME_UID,
            "runAsGroup": consts.RUNTIME_UID,
            "fsGroup": consts.RUNTIME_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        **fields,
        "containers": [container],
        "volumes": [
            config_volume(prefix, tls_secret),
            *volumes,
            {"name": TMP_VOLUME, "emptyDir": {}},
        ],
    }
    scheduling = {
        "nodeSelector": copy.deepcopy(settings.node_selector),
        "tolerations": copy.deepcopy(list(settings.tolerations)),
        "affinity": copy.deepcopy(settings.affinity) if affinity is None else affinity,
    }
    # Left out when empty, as the API server would: a stored object then equals a fresh build.
    pod.update({key: value for key, value in scheduling.items() if value})
    return pod


def config_volume(prefix: str, tls_secret: str) -> dict:
    """CONFIG_DIR: the hostmap, and tls/ with the party's Secret (one directory: a Secret volume
    mounted inside a ConfigMap volume would need a mount point in a read-only one)."""
    tls_files = [{"key": name, "path": f"{consts.TLS_DIR_NAME}/{name}"}
                 for name in (contract.TLS_CA, contract.TLS_CERT, contract.TLS_KEY)]
    hostmap = {"name": child_name(prefix, Component.HOSTMAP),
               "items": [{"key": consts.HOSTMAP_FILE, "path": consts.HOSTMAP_FILE}]}
    return {
        "name": CONFIG_VOLUME,
        "projected": {
            "defaultMode": CONFIG_MODE,
            "sources": [{"configMap": hostmap}, {"secret": {"name": tls_secret, "items": tls_files}}],
        },
    }
