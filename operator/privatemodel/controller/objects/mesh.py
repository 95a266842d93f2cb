"""The parties' mesh: the hostmap every runtime pod reads, the controllers' mesh addresses, and
the NetworkPolicies that draw the boundary (peers on the mesh port, clients on HTTPS only).

Every party's TensorFlow server listens on its own loopback; peers reach it only through the
party's mutual-TLS listener (contract.MESH_PORT), which admits nothing but the model's
certificates. That is the real boundary: labels can be forged by anyone who may create pods in
the namespace, so the NetworkPolicies (where the cluster's network plugin enforces them) are a
second fence, not the first.
"""
import json

from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import Triple, mesh_address
from privatemodel.controller.objects.pod import MESH_PORT_NAME, component_metadata, metadata
from privatemodel.controller.spec import PrivateModelSpec

# Each party reaches a peer through a tunnel on its own loopback, on the peer's port.
LOOPBACK = "127.0.0.1"
# Which component's pods run each controller party.
CONTROLLER_COMPONENTS = {consts.SHARING_PARTY: Component.SHARING, consts.SERVING_PARTY: Component.SERVING}


def hostmap(model_name: str, namespace: str, defaults: OperatorDefaults, triple: int = 0) -> dict:
    """Every party's TensorFlow address (a loopback tunnel) and its mesh address (HOST:MESH_PORT):
    the parties of one triple only."""
    prefix = Triple(model_name, triple).prefix
    tunnels = {party: f"{LOOPBACK}:{contract.MESH_TF_PORTS[party]}" for party in contract.PARTY_NAMES}
    mesh = {party: mesh_address(prefix, namespace, party, defaults.cluster_domain) for party in contract.PARTY_NAMES}
    return {**tunnels, contract.MESH_KEY: mesh}


def build_hostmap_config_map(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, triple: int = 0
) -> dict:
    """The triple's hostmap; for triples 1 and up also the owner of their TLS Secrets, so that
    removing the triple (scaling down) takes its Secrets too (the operator cannot delete Secrets)."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": component_metadata(model_name, namespace, Component.HOSTMAP, triple),
        "data": {consts.HOSTMAP_FILE: json.dumps(hostmap(model_name, namespace, defaults, triple), indent=2) + "\n"},
    }


def build_mesh_service(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, controller: str,
    triple: int = 0,
) -> dict:
    """A controller's mesh address. ClusterIP: its address stays while its pods come and go (a new
    sharing Job, a restarted serving pod), so players may resolve it once."""
    names = Triple(model_name, triple)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(names.name(Component.MESH, controller), namespace, names.labels(Component.MESH)),
        "spec": {
            "type": "ClusterIP",
            # Players call back into the controller while it warms up, before serving is Ready.
            "publishNotReadyAddresses": True,
            "selector": names.selector(CONTROLLER_COMPONENTS[controller]),
            "ports": [{"name": MESH_PORT_NAME, "port": contract.MESH_PORT, "targetPort": MESH_PORT_NAME,
                       "protocol": "TCP"}],
        },
    }


def build_network_policies(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, triple: int = 0
) -> list[dict]:
    """One policy per component, each pod's ingress and egress: the mesh port between the parties
    of one triple only (another triple's pods are selected by other labels); HTTPS (the share
    holders' ingress, serving) from anywhere; DNS out."""
    names = Triple(model_name, triple)

    def pods(*components: str) -> list[dict]:
        return [{"podSelector": {"matchLabels": names.selector(c)}} for c in components]

    def port(number: int, protocol: str = "TCP") -> dict:
        return {"port": number, "protocol": protocol}

    def mesh(direction: str, *components: str) -> dict:
        return {direction: pods(*components), "ports": [port(contract.MESH_PORT)]}

    def https(number: int) -> dict:
        return {"ports": [port(number)]}

    def dns() -> dict:
        # The cluster's DNS server may be a pod or (as on the project's test cluster) the node.
        return {"ports": [port(53, "UDP"), port(53)]}

    parties = (Component.PLAYERS, *CONTROLLER_COMPONENTS.values())
    rules = {
        # Players talk with each other and with both controllers; clients use the ingress.
        Component.PLAYERS: ([mesh("from", *parties), https(contract.INGRESS_PORT)], [mesh("to", *parties), dns()]),
        # The model owner's step reaches the players and nothing else.
        Component.SHARING: ([mesh("from", Component.PLAYERS)], [mesh("to", Component.PLAYERS), dns()]),
        Component.SERVING: ([mesh("from", Component.PLAYERS), https(contract.SERVING_PORT)],
                            [mesh("to", Component.PLAYERS), dns()]),
    }
    return [
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": component_metadata(model_name, namespace, component, triple),
            "spec": {
                "podSelector": {"matchLabels": names.selector(component)},
                "policyTypes": ["Ingress", "Egress"],
                "ingress": ingress,
                "egress": egress,
            },
        }
        for component, (ingress, egress) in rules.items()
    ]
