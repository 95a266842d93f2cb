"""The operator's connections to the API server die without a close (as behind a frozen or
restarted API server, or a lost NAT entry): a PrivateModel created afterwards is still served.
Local test cluster only: the test enters the operator pod's network namespace on this machine."""
import json
import subprocess
import time

import pytest

from cluster.harness import HERE as CLUSTER_DIR
from cluster.harness import external
from cluster.kube import pod_ready
from e2e.conftest import OPERATOR_NAMESPACE, operator_pods
from e2e.support import (
    apply_model,
    create_model_secret,
    kubectl,
    private_model,
    record_timing,
    wait_until,
    wait_until_serving,
)

pytestmark = pytest.mark.skipif(external(), reason="enters the operator pod's network namespace on this machine")

MODEL = "after-cut"


def cluster_setting(name):
    return subprocess.run(["bash", "-c", f'. "{CLUSTER_DIR}/config.sh"; echo "${name}"'],
                          capture_output=True, text=True, check=True).stdout.strip()


def running_operator(core):
    (pod,) = [pod for pod in operator_pods(core) if pod.status.phase == "Running" and not pod.metadata.deletion_timestamp]
    return pod


def test_the_operator_is_ready_and_its_health_endpoint_counts_the_models(kubeconfig, core, operator):
    pod = running_operator(core)
    assert pod_ready(pod)  # the readiness probe passed
    (port,) = [p.container_port for p in pod.spec.containers[0].ports if p.name == "health"]
    raw = kubectl(kubeconfig, "get", "--raw",
                  f"/api/v1/namespaces/{OPERATOR_NAMESPACE}/pods/{pod.metadata.name}:{port}/proxy/healthz").stdout
    assert isinstance(json.loads(raw)["reconciledModels"], int), raw


@pytest.fixture
def cut_connections(core):
    """Drop every packet of the operator's open connections to the API server, both ways: no
    answer and no close ever reach it. New connections go through. The rules go afterwards."""
    pod = running_operator(core)
    container_id = pod.status.container_statuses[0].container_id.split("://", 1)[1]
    docker = cluster_setting("DOCKER").split()
    pid = subprocess.run([*docker, "inspect", "-f", "{{.State.Pid}}", container_id],
                         capture_output=True, text=True, check=True).stdout.strip()

    def in_pod_network(*command):
        return subprocess.run(["nsenter", "-t", pid, "-n", *command], capture_output=True, text=True, check=True).stdout

    # How the operator reaches the API server: the `kubernetes` Service.
    api_server = f"{cluster_setting('KUBERNETES_SERVICE_IP')}:443"
    ports = sorted({line.split()[2].rsplit(":", 1)[1]
                    for line in in_pod_network("ss", "-Htn", "state", "established").splitlines()
                    if line.split()[3] == api_server})
    rules = [rule for port in ports for rule in (("INPUT", "--dport", port), ("OUTPUT", "--sport", port))]
    added = []
    try:
        for chain, match, port in rules:
            in_pod_network("iptables", "-I", chain, "-p", "tcp", match, port, "-j", "DROP")
            added.append((chain, match, port))
        yield pod, ports
    finally:
        for chain, match, port in added:
            in_pod_network("iptables", "-D", chain, "-p", "tcp", match, port, "-j", "DROP")


def test_a_model_created_after_the_connections_died_is_served(kubeconfig, namespace, core, custom, reference_model,
                                                              cut_connections):
    pod, ports = cut_connections
    assert ports, "the operator has no connection to the API server to cut (not even its watch)"
    create_model_secret(kubeconfig, namespace, "reference-model", reference_model["path"])
    applied = time.monotonic()
    apply_model(kubeconfig, namespace, MODEL, "reference-model")

    wait_until(lambda: (private_model(custom, namespace, MODEL) or {}).get("status"), 240,
               f"a first status of {MODEL}", interval=1)
    record_timing("connections cut: applied to a first status", time.monotonic() - applied)
    wait_until_serving(custom, namespace, MODEL, timeout=400)
    record_timing("connections cut: applied to Serving", time.monotonic() - applied)
    # Recovered by the watch and request timeouts, not by a restart through the liveness probe.
    after = running_operator(core)
    assert after.metadata.uid == pod.metadata.uid
    assert after.status.container_statuses[0].restart_count == pod.status.container_statuses[0].restart_count
