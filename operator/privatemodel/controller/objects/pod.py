"""Pieces every runtime pod shares: locked-down security, the hostmap, a writable /tmp."""
import copy
from collections.abc import Sequence

from privatemodel.controller import consts, naming
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import child_name
from privatemodel.controller.spec import PodSettings

HOSTMAP_VOLUME = "hostmap"
TMP_VOLUME = "tmp"


def metadata(name: str, namespace: str, labels: dict, annotations: dict | None = None) -> dict:
    meta = {"name": name, "namespace": namespace, "labels": labels}
    if annotations:
        meta["annotations"] = annotations
    return meta


def component_metadata(model_name: str, namespace: str, component: str) -> dict:
    """A child named and labelled after its model and component, e.g. mnist-players."""
    return metadata(child_name(model_name, component), namespace, naming.labels(model_name, component))


def runtime_container(
    name: str,
    command: list[str],
    settings: PodSettings,
    defaults: OperatorDefaults,
    mounts: list[dict],
    env: Sequence[dict] = (),
    **fields,
) -> dict:
    """A container of the runtime image that reads the hostmap and can write only /tmp."""
    return {
        "name": name,
        "image": settings.image or defaults.runtime_image,
        "imagePullPolicy": defaults.image_pull_policy,
        "command": command,
        # TensorFlow and Keras keep caches under HOME; the root filesystem is read-only.
        "env": [*env, {"name": "HOME", "value": consts.TMP_DIR}],
        "resources": copy.deepcopy(settings.resources),
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": HOSTMAP_VOLUME, "mountPath": consts.CONFIG_DIR, "readOnly": True},
            *mounts,
            {"name": TMP_VOLUME, "mountPath": consts.TMP_DIR},
        ],
        **fields,
    }


def runtime_pod_spec(
    model_name: str, container: dict, settings: PodSettings, volumes: list[dict], affinity: dict | None = None, **fields
) -> dict:
    """A pod that cannot reach the Kubernetes API (no token) and runs as an unprivileged user."""
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
            {"name": HOSTMAP_VOLUME, "configMap": {"name": child_name(model_name, Component.HOSTMAP)}},
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
