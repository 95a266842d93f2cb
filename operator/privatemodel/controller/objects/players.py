"""The three SecureNN players: a headless Service, a StatefulSet, and the hostmap that names them."""
import copy
import json

from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import child_name, labels, player_host, player_name, selector_labels
from privatemodel.controller.objects.pod import component_metadata, runtime_container, runtime_pod_spec
from privatemodel.controller.spec import PrivateModelSpec

STATE_VOLUME = "state"
PORT_NAME = "grpc"


def hostmap(model_name: str, namespace: str, defaults: OperatorDefaults) -> dict:
    """{"server0": "HOST:4440", ...} in player order, HOST the stable DNS name of pod i."""
    hosts = [player_host(model_name, namespace, index, defaults.cluster_domain) for index in range(consts.PLAYER_COUNT)]
    return {player_name(index): f"{host}:{consts.PLAYER_PORT}" for index, host in enumerate(hosts)}


def build_hostmap_config_map(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": component_metadata(model_name, namespace, Component.HOSTMAP),
        "data": {consts.HOSTMAP_FILE: json.dumps(hostmap(model_name, namespace, defaults), indent=2) + "\n"},
    }


def build_players_service(spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": component_metadata(model_name, namespace, Component.PLAYERS),
        "spec": {
            "clusterIP": "None",
            # Players must resolve each other while starting, before any of them is Ready.
            "publishNotReadyAddresses": True,
            "selector": selector_labels(model_name, Component.PLAYERS),
            "ports": [{"name": PORT_NAME, "port": consts.PLAYER_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def build_players_stateful_set(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults
) -> dict:
    name = child_name(model_name, Component.PLAYERS)
    # The pod's ordinal picks its role: <model>-players-1 runs as server1.
    command = (
        f'exec {consts.RUNTIME_COMMAND} player "{consts.PLAYER_NAME_PREFIX}${{POD_NAME##*-}}"'
        f" --config {consts.HOSTMAP_PATH} --state-dir {consts.STATE_DIR}"
    )
    container = runtime_container(
        "player",
        ["/bin/sh", "-c", command],
        spec.players,
        defaults,
        mounts=[{"name": STATE_VOLUME, "mountPath": consts.STATE_DIR}],
        env=[{"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
        ports=[{"name": PORT_NAME, "containerPort": consts.PLAYER_PORT, "protocol": "TCP"}],
        readinessProbe={"tcpSocket": {"port": PORT_NAME}, "periodSeconds": 5},
    )
    pod_spec = runtime_pod_spec(
        model_name,
        container,
        spec.players,
        # The player's share lives here: it survives container restarts, not the pod's deletion.
        volumes=[{"name": STATE_VOLUME, "emptyDir": {}}],
        affinity=_spread_across_nodes(spec.players.affinity, model_name),
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": component_metadata(model_name, namespace, Component.PLAYERS),
        "spec": {
            "replicas": consts.PLAYER_COUNT,
            "serviceName": name,
            # Players do not depend on each other to start; waiting for ordinals only slows sharing.
            "podManagementPolicy": "Parallel",
            "updateStrategy": {"type": "RollingUpdate"},
            "selector": {"matchLabels": selector_labels(model_name, Component.PLAYERS)},
            "template": {"metadata": {"labels": labels(model_name, Component.PLAYERS)}, "spec": pod_spec},
        },
    }


def build_players_network_policy(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults
) -> dict:
    """Only the model's own pods and its labelled clients reach the players: a player's TensorFlow
    server runs whatever graph a connecting process sends it."""
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": component_metadata(model_name, namespace, Component.PLAYERS),
        "spec": {
            "podSelector": {"matchLabels": selector_labels(model_name, Component.PLAYERS)},
            "policyTypes": ["Ingress"],
            "ingress": [{
                "from": [
                    {"podSelector": {"matchLabels": selector_labels(model_name)}},
                    {"podSelector": {"matchLabels": {consts.LABEL_CLIENT_OF: model_name}}},
                ],
                "ports": [{"port": consts.PLAYER_PORT, "protocol": "TCP"}],
            }],
        },
    }


def _spread_across_nodes(affinity: dict, model_name: str) -> dict:
    """The user's affinity; unless it says otherwise about pods, prefer one player per node.

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
