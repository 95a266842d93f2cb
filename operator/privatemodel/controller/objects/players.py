"""The three SecureNN players: one single-replica StatefulSet each (each mounts only its own
party's Secret), one headless Service that gives their pods stable names, and the clients'
Service of each share holder's HTTPS ingress."""
import copy

from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import Triple, selector_labels
from privatemodel.controller.objects.pod import (
    MESH_PORT_NAME,
    component_metadata,
    metadata,
    runtime_container,
    runtime_pod_spec,
)
from privatemodel.controller.spec import PrivateModelSpec
from privatemodel.controller.tls import Issuance

STATE_VOLUME = "state"
INGRESS_PORT_NAME = "https"


def build_players_service(spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults,
                          triple: int = 0) -> dict:
    """Headless: `<model>-server<i>-0.<model>-players...` resolves to that player's pod (mesh port only)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": component_metadata(model_name, namespace, Component.PLAYERS, triple),
        "spec": {
            "clusterIP": "None",
            # Players must resolve each other while starting, before any of them is Ready.
            "publishNotReadyAddresses": True,
            "selector": Triple(model_name, triple).selector(Component.PLAYERS),
            "ports": [{"name": MESH_PORT_NAME, "port": contract.MESH_PORT, "targetPort": MESH_PORT_NAME,
                       "protocol": "TCP"}],
        },
    }


def build_player_stateful_set(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, player: str,
    issuance: Issuance, triple: int = 0,
) -> dict:
    """`issuance`: the triple's own certificates."""
    names = Triple(model_name, triple)
    command = [
        consts.RUNTIME_COMMAND, "player", player,
        "--config", consts.HOSTMAP_PATH,
        "--state-dir", consts.STATE_DIR,
        "--tls-dir", consts.TLS_DIR,
    ]  # fmt: skip
    if player in contract.SHARE_HOLDERS:
        # Clients send query shares and fetch answer shares here (HTTPS); it answers ready once
        # the player is up.
        command += ["--ingress-port", str(contract.INGRESS_PORT)]
        ports = [{"name": INGRESS_PORT_NAME, "containerPort": contract.INGRESS_PORT, "protocol": "TCP"}]
        probe = {"httpGet": {"path": consts.INGRESS_READY_PATH, "port": INGRESS_PORT_NAME, "scheme": "HTTPS"}}
    else:
        # server2 serves no clients: its mesh listener accepting connections is all there is to see.
        ports = []
        probe = {"tcpSocket": {"port": MESH_PORT_NAME}}
    container = runtime_container(
        "player",
        command,
        spec.players,
        defaults,
        mounts=[{"name": STATE_VOLUME, "mountPath": consts.STATE_DIR}],
        default_resources=defaults.player_resources,
        ports=ports,
        readinessProbe={**probe, "periodSeconds": 5},
    )
    pod_spec = runtime_pod_spec(
        names.prefix,
        container,
        spec.players,
        # The player's share lives here: it survives container restarts, not the pod's deletion.
        volumes=[{"name": STATE_VOLUME, "emptyDir": {}}],
        tls_secret=issuance.secret_name(names.prefix, player),
        affinity=_spread_across_nodes(spec.players.affinity, model_name),
    )
    player_labels = {**names.labels(Component.PLAYERS), consts.LABEL_PLAYER: player}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(names.player_workload(player), namespace, player_labels),
        "spec": {
            "replicas": 1,
            "serviceName": names.name(Component.PLAYERS),
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": names.workload_selector(Component.PLAYERS, player)},
            "template": {"metadata": {"labels": copy.deepcopy(player_labels)}, "spec": pod_spec},
        },
    }


def build_ingress_service(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, player: str,
    triple: int = 0,
) -> dict:
    """Clients reach a share holder's ingress here; its type says whether from outside the cluster."""
    names = Triple(model_name, triple)
    meta = metadata(names.name(Component.INGRESS, player), namespace,
                    {**names.labels(Component.INGRESS), consts.LABEL_PLAYER: player})
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta,
        "spec": {
            "type": spec.access.service_type or defaults.service_type,
            "selector": names.selector(Component.PLAYERS, player),
            "ports": [{"name": INGRESS_PORT_NAME, "port": contract.INGRESS_PORT, "targetPort": INGRESS_PORT_NAME,
                       "protocol": "TCP"}],
        },
    }


def build_players_disruption_budget(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, api_version: str
) -> dict:
    """A voluntary disruption (a node drain) evicts at most one player at a time: each eviction
    costs that player's share and a new sharing, and two at once would leave nothing to serve.
    One budget for every triple (the eviction API refuses pods under two budgets): a drain never
    takes two triples down at once.
    api_version: policy/v1, or policy/v1beta1 on clusters older than 1.21."""
    return {
        "apiVersion": api_version,
        "kind": "PodDisruptionBudget",
        "metadata": component_metadata(model_name, namespace, Component.PLAYERS),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector_labels(model_name, Component.PLAYERS)}},
    }


def _spread_across_nodes(affinity: dict, model_name: str) -> dict:
    """The user's affinity; unless it says otherwise about pods, prefer one player per node
    (among all the model's players, every triple's).

    Preferred, not required: three players on a one-node cluster still run, and shares held by
    different nodes' players are only as separate as the nodes are.
    """
    affinity = copy.deepcopy(affinity)
    if "podAntiAffinity" in affinity:
        return affinity
    spread = {
        "weight": 100,
        "podAffinityTerm": {
            "labelSelector": {"matchLabels": selector_labels(model_name, Component.PLAYERS)},
            "topologyKey": "kubernetes.io/hostname",
        },
    }
    return {**affinity, "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [spread]}}
