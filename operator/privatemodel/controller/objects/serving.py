"""Serving: one `privatemodel serve` pod driving the players, behind a ClusterIP Service."""
from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import labels, selector_labels
from privatemodel.controller.objects.pod import component_metadata, runtime_container, runtime_pod_spec
from privatemodel.controller.spec import PrivateModelSpec

PORT_NAME = "http"


def build_serving_deployment(
    spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults, shared_digest: str
) -> dict:
    """Serving for the shares with this digest; a new sharing rolls the pod, which loads shares at start."""
    command = [
        consts.RUNTIME_COMMAND, "serve",
        "--config", consts.HOSTMAP_PATH,
        "--port", str(consts.SERVING_PORT),
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
        ports=[{"name": PORT_NAME, "containerPort": consts.SERVING_PORT, "protocol": "TCP"}],
        readinessProbe={
            "httpGet": {"path": consts.SERVING_READY_PATH, "port": PORT_NAME},
            "periodSeconds": 5,
        },
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": component_metadata(model_name, namespace, Component.SERVING),
        "spec": {
            "replicas": 1,
            # Two serve processes driving the same players at once would interleave their graphs.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(model_name, Component.SERVING)},
            "template": {
                "metadata": {
                    "labels": labels(model_name, Component.SERVING),
                    "annotations": {consts.ANNOTATION_SHARED_DIGEST: shared_digest},
                },
                "spec": runtime_pod_spec(model_name, container, spec.serving, volumes=[]),
            },
        },
    }


def build_serving_service(spec: PrivateModelSpec, model_name: str, namespace: str, defaults: OperatorDefaults) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": component_metadata(model_name, namespace, Component.SERVING),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(model_name, Component.SERVING),
            "ports": [{"name": PORT_NAME, "port": consts.SERVING_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}],
        },
    }
