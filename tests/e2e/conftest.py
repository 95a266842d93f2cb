"""The e2e suite: the chart installed with helm on a real cluster (the project's own, or kind
with PRIVATEMODEL_TEST_CLUSTER=external), PrivateModels applied with kubectl, clients in pods."""
import uuid
from pathlib import Path

import pytest
from kubernetes import client

# API clients of the cluster tests, on this directory's kubeconfig fixture.
from cluster.conftest import api, apps, batch, core  # noqa: F401
from cluster.harness import ensure_cluster, ensure_images
from e2e.support import IMAGE_TAG, OPERATOR_NAMESPACE, OPERATOR_SELECTOR, REPO, Diagnostics, helm, kubectl, wait_until

RELEASE = "pm"


@pytest.fixture(scope="session")
def kubeconfig(request):
    # The first run builds Kubernetes and the images (minutes): show their progress lines.
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        path = ensure_cluster()
        ensure_images("runtime", "operator")
    Diagnostics.kubeconfig = path
    restart_operator_left_running(path)
    return path


def restart_operator_left_running(kubeconfig):
    """An operator an earlier run installed keeps running the image it started with, though the
    tag now names a rebuilt one (imagePullPolicy Never): restart it, so this run tests this code."""
    if kubectl(kubeconfig, "-n", OPERATOR_NAMESPACE, "get", "pods", "-l", OPERATOR_SELECTOR, "-o", "name",
               check=False).stdout.strip():
        kubectl(kubeconfig, "-n", OPERATOR_NAMESPACE, "rollout", "restart", "deployment", "-l", OPERATOR_SELECTOR)
        kubectl(kubeconfig, "-n", OPERATOR_NAMESPACE, "rollout", "status", "deployment", "-l", OPERATOR_SELECTOR,
                "--timeout=180s", timeout=200)


@pytest.fixture(scope="session")
def custom(api):
    return client.CustomObjectsApi(api)


def operator_pods(core):
    return core.list_namespaced_pod(OPERATOR_NAMESPACE, label_selector=OPERATOR_SELECTOR).items


@pytest.fixture(scope="module")
def operator(kubeconfig, core):
    """The chart, installed as the README says (a no-op upgrade when it already is). Helm installs
    a chart's CRDs only on first install, so the CRD is applied first, as an upgrade must."""
    kubectl(kubeconfig, "apply", "-f", str(REPO / "charts" / "privatemodel" / "crds" / "privatemodels.yaml"))
    # Monitoring on, as with the Prometheus Operator installed (its ServiceMonitor kind only).
    kubectl(kubeconfig, "apply", "-f", str(Path(__file__).parent / "fixtures" / "servicemonitor-crd.yaml"))
    # --reset-values: an upgrade without values would keep those of an earlier install by hand.
    helm(kubeconfig, "upgrade", "--install", RELEASE, str(REPO / "charts" / "privatemodel"),
         "--namespace", OPERATOR_NAMESPACE, "--create-namespace", "--reset-values", "--wait", "--timeout", "180s",
         "--set", f"operator.image.tag={IMAGE_TAG}", "--set", f"runtime.image.tag={IMAGE_TAG}",
         "--set", "metrics.serviceMonitor.enabled=true")
    return RELEASE


@pytest.fixture(scope="session")
def reference_model(reference_model_path):
    import tensorflow as tf

    from privatemodel.runtime import reference

    _, _, x_test, _ = reference.load_digits()
    plaintext = tf.keras.models.load_model(reference_model_path, compile=False).predict(x_test[:8], verbose=0)
    return {"path": reference_model_path, "x": x_test[:8], "plaintext": plaintext}


@pytest.fixture(scope="module")
def namespace(kubeconfig, core, operator):
    name = f"pm-e2e-{uuid.uuid4().hex[:6]}"
    core.create_namespace({"metadata": {"name": name}})
    # Controllers retry until the namespace's service account exists; pods created here do not.
    wait_until(lambda: core.read_namespaced_service_account("default", name), 30, f"service account of {name}")
    Diagnostics.namespace = name
    yield name
    # While the operator still runs: PrivateModels keep their finalizer until it has torn them down.
    kubectl(kubeconfig, "-n", name, "delete", "privatemodels", "--all", "--wait", "--timeout=180s", timeout=200)
    core.delete_namespace(name)
    Diagnostics.namespace = None
