"""Names, DNS names, URLs and labels of a PrivateModel's children; each comes from one function here."""
from dataclasses import dataclass

from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.consts import Component

# Kubernetes appends to some child names, and label values stop at 63 characters: StatefulSet
# pods carry `controller-revision-hash: <statefulset>-<hash of up to 10>`, sharing Jobs end in
# `-<digest>` and their pods carry `job-name: <job>`. A longer model name fails late, in a child.
_LONGEST_SUFFIX = max(
    max(len(f"-{player}-") + 10 for player in contract.PLAYER_NAMES),
    len(f"-{Component.SHARING}-") + consts.SHARING_DIGEST_LENGTH,
)
MAX_MODEL_NAME_LENGTH = 63 - _LONGEST_SUFFIX
# Triples 1 and up insert `-t<N>` after the model's name (Triple.prefix), so a scaled-out model's
# name is shorter; a single triple keeps the full length (existing models keep their names).
MAX_SCALED_MODEL_NAME_LENGTH = MAX_MODEL_NAME_LENGTH - len(f"-t{consts.MAX_REPLICAS - 1}")


def child_name(model_name: str, component: str, suffix: str | None = None) -> str:
    """`<model>-<component>`, or `<model>-<component>-<suffix>` (a Job's digest, a party's name)."""
    name = f"{model_name}-{component}"
    return f"{name}-{suffix}" if suffix else name


def player_workload(model_name: str, player: str) -> str:
    """The single-replica StatefulSet of one player, e.g. mnist-server1; its pod is `<this>-0`."""
    return f"{model_name}-{player}"


def player_pod(model_name: str, player: str) -> str:
    return f"{player_workload(model_name, player)}-0"


def tls_secret_name(model_name: str, party: str, issuer: str) -> str:
    """One party's Secret; `issuer` (the CA's fingerprint) keeps two issuances from mixing."""
    return child_name(model_name, Component.TLS, f"{party}-{issuer}")


def service_host(service: str, namespace: str, cluster_domain: str) -> str:
    return f"{service}.{namespace}.svc.{cluster_domain}"


def mesh_address(model_name: str, namespace: str, party: str, cluster_domain: str) -> str:
    """HOST:PORT of a party's mutual-TLS listener: a player's pod through the headless players
    Service, a controller's pod through its own ClusterIP Service (stable while its pods change)."""
    if party in contract.PLAYER_NAMES:
        players = child_name(model_name, Component.PLAYERS)
        host = f"{player_pod(model_name, party)}.{service_host(players, namespace, cluster_domain)}"
    else:
        host = service_host(child_name(model_name, Component.MESH, party), namespace, cluster_domain)
    return f"{host}:{contract.MESH_PORT}"


def access_urls(model_name: str, namespace: str, cluster_domain: str) -> dict:
    """Where clients in the cluster reach serving and the share holders' ingress (contract.ACCESS_KEYS);
    `model_name`: or a triple's prefix."""
    def url(service: str, port: int) -> str:
        return f"https://{service_host(service, namespace, cluster_domain)}:{port}"

    urls = {"serving": url(child_name(model_name, Component.SERVING), contract.SERVING_PORT)}
    for player in contract.SHARE_HOLDERS:
        urls[player] = url(child_name(model_name, Component.INGRESS, player), contract.INGRESS_PORT)
    return urls


def access_ca_key(triple: int) -> str:
    """The key of the access ConfigMap that holds a triple's CA: ca.crt for triple 0, as before scale-out."""
    return contract.TLS_CA if triple == 0 else f"t{triple}-{contract.TLS_CA}"


def selector_labels(model_name: str, component: str | None = None) -> dict:
    """Labels that select one component's pods, or (component None) all children of a model."""
    labels = {consts.LABEL_MODEL: model_name}
    if component:
        labels[consts.LABEL_COMPONENT] = component
    return labels


@dataclass(frozen=True)
class Triple:
    """One of a PrivateModel's independent player triples (spec.serving.replicas): three players,
    their sharing Job and their serving, named `<model>-t<index>-...`. Triple 0 keeps the names and
    labels a model had before scale-out, so an operator upgrade leaves its pods alone."""

    model_name: str
    index: int = 0

    @property
    def prefix(self) -> str:
        """What the triple's child names start with, and its app.kubernetes.io/instance."""
        return self.model_name if self.index == 0 else f"{self.model_name}-t{self.index}"

    def name(self, component: str, suffix: str | None = None) -> str:
        return child_name(self.prefix, component, suffix)

    def player_workload(self, player: str) -> str:
        return player_workload(self.prefix, player)

    def player_pod(self, player: str) -> str:
        return player_pod(self.prefix, player)

    def workload_selector(self, component: str, player: str | None = None) -> dict:
        """A StatefulSet's or Deployment's selector (immutable: triple 0's stays as it always was).
        It may also match other triples' pods; their owner references keep them apart."""
        labels = selector_labels(self.model_name, component)
        if player:
            labels[consts.LABEL_PLAYER] = player
        if self.index:
            labels[consts.LABEL_TRIPLE] = str(self.index)
        return labels

    def selector(self, component: str, player: str | None = None) -> dict:
        """Labels that select this triple's pods of one component and no other triple's: what
        Services, NetworkPolicies and the operator's own lists select by. A Service selector cannot
        say "no triple label", so triple 0 is told apart by its instance."""
        return {**self.workload_selector(component, player), consts.LABEL_INSTANCE: self.prefix}

    def labels(self, component: str) -> dict:
        """Every label a child of this triple and its pods carry: the selector plus the recommended ones."""
        return {
            "app.kubernetes.io/name": consts.APP_NAME,
            "app.kubernetes.io/component": component,
            "app.kubernetes.io/managed-by": consts.MANAGED_BY,
            **self.selector(component),
        }
