"""Names, DNS names and labels of a PrivateModel's children; each comes from one function here."""
from privatemodel.controller import consts
from privatemodel.controller.consts import Component

# Kubernetes appends to some child names, and label values stop at 63 characters: StatefulSet
# pods carry `controller-revision-hash: <statefulset>-<hash of up to 10>`, sharing Jobs end in
# `-<digest>` and their pods carry `job-name: <job>`. A longer model name fails late, in a child.
_LONGEST_SUFFIX = max(
    len(f"-{Component.PLAYERS}-") + 10,
    len(f"-{Component.SHARING}-") + consts.SHARING_DIGEST_LENGTH,
)
MAX_MODEL_NAME_LENGTH = 63 - _LONGEST_SUFFIX


def child_name(model_name: str, component: str, suffix: str | None = None) -> str:
    """`<model>-<component>`, or `<model>-<component>-<suffix>` (the sharing Job's digest)."""
    name = f"{model_name}-{component}"
    return f"{name}-{suffix}" if suffix else name


def player_name(index: int) -> str:
    """The SecureNN role the player pod with this StatefulSet ordinal plays: server0..server2."""
    return f"{consts.PLAYER_NAME_PREFIX}{index}"


def player_host(model_name: str, namespace: str, index: int, cluster_domain: str) -> str:
    """The stable DNS name of player pod `index`, served by the headless players Service."""
    players = child_name(model_name, Component.PLAYERS)
    return f"{players}-{index}.{players}.{namespace}.svc.{cluster_domain}"


def serving_url(model_name: str, namespace: str, cluster_domain: str) -> str:
    """Where clients send `privatemodel predict --server`."""
    serving = child_name(model_name, Component.SERVING)
    return f"http://{serving}.{namespace}.svc.{cluster_domain}:{consts.SERVING_PORT}"


def selector_labels(model_name: str, component: str | None = None) -> dict:
    """Labels that select one component's pods, or (component None) all children of a model."""
    labels = {consts.LABEL_MODEL: model_name}
    if component:
        labels[consts.LABEL_COMPONENT] = component
    return labels


def labels(model_name: str, component: str) -> dict:
    """Every label a child and its pods carry: the selector labels plus the recommended ones."""
    return {
        "app.kubernetes.io/name": consts.APP_NAME,
        "app.kubernetes.io/instance": model_name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": consts.MANAGED_BY,
        **selector_labels(model_name, component),
    }
