"""The parties' TLS Secrets, and the clients' access ConfigMap (URLs and the CA, nothing secret)."""
import json

from privatemodel import contract
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import Triple, access_ca_key, access_urls
from privatemodel.controller.objects.pod import component_metadata, metadata
from privatemodel.controller.spec import PrivateModelSpec
from privatemodel.controller.tls import Issuance


def build_tls_secret(model_name: str, namespace: str, issuance: Issuance, party: str, key: str, certificate: str,
                     triple: int = 0) -> dict:
    """One party's key and certificate with its triple's CA: the layout `--tls-dir` reads."""
    names = Triple(model_name, triple)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(issuance.secret_name(names.prefix, party), namespace, names.labels(Component.TLS)),
        "type": "kubernetes.io/tls",
        "stringData": {contract.TLS_CA: issuance.ca_certificate, contract.TLS_CERT: certificate, contract.TLS_KEY: key},
    }


def triple_access(model_name: str, namespace: str, defaults: OperatorDefaults, triple: int, issuance: Issuance) -> dict:
    """One triple's {"serving": URL, "server0": URL, "server1": URL, "ca": PEM} (contract.ACCESS_KEYS)."""
    urls = access_urls(Triple(model_name, triple).prefix, namespace, defaults.cluster_domain)
    return {**urls, "ca": issuance.ca_certificate}


def access(model_name: str, namespace: str, defaults: OperatorDefaults, issuances: list[Issuance]) -> dict:
    """What `privatemodel predict --access` reads: one triple's access; with several, triple 0's at
    the top level (what clients older than scale-out read) and every triple's, in order, under
    contract.ACCESS_TRIPLES. One triple's file has no list: a user who points it elsewhere (node
    ports, a load balancer) edits one set of URLs."""
    triples = [triple_access(model_name, namespace, defaults, triple, issuance)
               for triple, issuance in enumerate(issuances)]
    return triples[0] if len(triples) == 1 else {**triples[0], contract.ACCESS_TRIPLES: triples}


def build_access_config_map(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, issuances: list[Issuance]
) -> dict:
    """`issuances`: each triple's, in order."""
    cas = {access_ca_key(triple): issuance.ca_certificate for triple, issuance in enumerate(issuances)}
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": component_metadata(model_name, namespace, Component.ACCESS),
        "data": {contract.ACCESS_FILE: json.dumps(access(model_name, namespace, defaults, issuances), indent=2) + "\n",
                 **cas},
    }
