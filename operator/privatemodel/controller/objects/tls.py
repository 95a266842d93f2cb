"""The parties' TLS Secrets, and the clients' access ConfigMap (URLs and the CA, nothing secret)."""
import json

from privatemodel import contract
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import access_urls, labels
from privatemodel.controller.objects.pod import component_metadata, metadata
from privatemodel.controller.spec import PrivateModelSpec
from privatemodel.controller.tls import Issuance


def build_tls_secret(model_name: str, namespace: str, issuance: Issuance, party: str, key: str, certificate: str) -> dict:
    """One party's key and certificate with the model's CA: the layout `--tls-dir` reads."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata(issuance.secret_name(model_name, party), namespace, labels(model_name, Component.TLS)),
        "type": "kubernetes.io/tls",
        "stringData": {contract.TLS_CA: issuance.ca_certificate, contract.TLS_CERT: certificate, contract.TLS_KEY: key},
    }


def access(model_name: str, namespace: str, defaults: OperatorDefaults, issuance: Issuance) -> dict:
    """What `privatemodel predict --access` reads: {"serving": URL, "server0": URL, "server1": URL, "ca": PEM}."""
    return {**access_urls(model_name, namespace, defaults.cluster_domain), "ca": issuance.ca_certificate}


def build_access_config_map(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, issuance: Issuance
) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": component_metadata(model_name, namespace, Component.ACCESS),
        "data": {
            contract.ACCESS_FILE: json.dumps(access(model_name, namespace, defaults, issuance), indent=2) + "\n",
            contract.TLS_CA: issuance.ca_certificate,
        },
    }
