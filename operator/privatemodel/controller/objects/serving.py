"""Serving: one `privatemodel serve` pod driving the players, behind the clients' HTTPS Service."""
from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import Triple, access_ca_key, child_name
from privatemodel.controller.objects.pod import component_metadata, runtime_container, runtime_pod_spec
from privatemodel.controller.spec import PrivateModelSpec
from privatemodel.controller.tls import Issuance

PORT_NAME = "https"


def build_serving_deployment(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, shared_digest: str,
    issuance: Issuance, triple: int = 0,
) -> dict:
    """Serving for the shares with this digest (one triple's); a new sharing rolls the pod, which
    loads shares at start."""
    names = Triple(model_name, triple)
    command = [
        consts.RUNTIME_COMMAND, "serve",
        "--config", consts.HOSTMAP_PATH,
        "--tls-dir", consts.TLS_DIR,
        "--host", "0.0.0.0",
        "--port", str(contract.SERVING_PORT),
        "--warm-up-idle", ",".join(map(str, contract.IDLE_WARM_UP_SIZES)),
    ]  # fmt: skip
    if spec.serving.num_requests is not None:
        # A Deployment restarts a pod that exits: serve stays up, refusing more, until the operator
        # reads completed=true from /status and marks the PrivateModel Completed.
        command += ["--num-requests", str(spec.serving.num_requests), "--wait-after-complete"]
    container = runtime_container(
        "serve",
        command,
        spec.serving,
        defaults,
        mounts=[],
        default_resources=defaults.serving_resources,
        ports=[{"name": PORT_NAME, "containerPort": contract.SERVING_PORT, "protocol": "TCP"}],
        readinessProbe={
            "httpGet": {"path": consts.SERVING_READY_PATH, "port": PORT_NAME, "scheme": "HTTPS"},
            "periodSeconds": 5,
        },
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": component_metadata(model_name, namespace, Component.SERVING, triple),
        "spec": {
            # One serve process per triple: two driving the same players at once would interleave
            # their graphs (spec.serving.replicas adds triples, not serve processes).
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": names.workload_selector(Component.SERVING)},
            "template": {
                "metadata": {
                    "labels": names.labels(Component.SERVING),
                    "annotations": {consts.ANNOTATION_SHARED_DIGEST: shared_digest},
                },
                "spec": runtime_pod_spec(names.prefix, container, spec.serving, volumes=[],
                                         tls_secret=issuance.secret_name(names.prefix, consts.SERVING_PARTY)),
            },
        },
    }


def build_serving_service(spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults,
                          triple: int = 0) -> dict:
    """Clients reach serving here; its type says whether from outside the cluster."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": component_metadata(model_name, namespace, Component.SERVING, triple),
        "spec": {
            "type": spec.access.service_type or defaults.service_type,
            "selector": Triple(model_name, triple).selector(Component.SERVING),
            "ports": [{"name": PORT_NAME, "port": contract.SERVING_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }


def build_serving_service_monitor(spec: PrivateModelSpec, model_name: str, namespace: str,
                                  defaults: OperatorDefaults, triple: int = 0) -> dict:
    """For the Prometheus Operator: scrape serving's /metrics over HTTPS, trusting only this triple's
    CA (from the clients' access ConfigMap) and checking the certificate names the serve party."""
    names = Triple(model_name, triple)
    meta = component_metadata(model_name, namespace, Component.SERVING, triple)
    meta["labels"].update(defaults.service_monitor_labels)
    return {
        "apiVersion": consts.SERVICE_MONITOR_API_VERSION,
        "kind": "ServiceMonitor",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": names.selector(Component.SERVING)},
            "endpoints": [{
                "port": PORT_NAME,
                "scheme": "https",
                "path": consts.SERVING_METRICS_PATH,
                "tlsConfig": {
                    "ca": {"configMap": {"name": child_name(model_name, Component.ACCESS), "key": access_ca_key(triple)}},
                    "serverName": consts.SERVING_PARTY,
                },
            }],
        },
    }
