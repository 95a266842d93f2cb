"""Stable pod names through the cluster DNS: a 3-replica StatefulSet behind a headless Service,
each pod resolving the others' names and connecting over TCP, when the pods are Ready and, with
publishNotReadyAddresses, before they are."""

import pytest

from cluster.kube import box_container, exec_pod, pod_ready, wait_until

REPLICAS = 3
PORT = 7000
# Every pod answers a TCP connection on PORT with its own name.
SERVE = f"exec busybox nc -ll -p {PORT} -e /bin/hostname"


def make_peers(core, apps, namespace, *, ready: bool, publish_not_ready: bool):
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "peers"},
        "spec": {"clusterIP": "None", "selector": {"app": "peers"},
                 "publishNotReadyAddresses": publish_not_ready,
                 "ports": [{"name": "peer", "port": PORT}]},
    })
    probe = ({"tcpSocket": {"port": PORT}} if ready else {"exec": {"command": ["false"]}})
    apps.create_namespaced_stateful_set(namespace, {
        "metadata": {"name": "peer"},
        "spec": {
            "serviceName": "peers", "replicas": REPLICAS,
            "podManagementPolicy": "Parallel",  # start all three without waiting for Ready
            "selector": {"matchLabels": {"app": "peers"}},
            "template": {
                "metadata": {"labels": {"app": "peers"}},
                "spec": {"terminationGracePeriodSeconds": 0, "containers": [box_container(
                    SERVE, ports=[{"containerPort": PORT}],
                    readinessProbe={**probe, "periodSeconds": 1})]},
            },
        },
    })
    pods = [f"peer-{i}" for i in range(REPLICAS)]
    for pod in pods:
        wait_until(lambda: core.read_namespaced_pod(pod, namespace).status.phase == "Running",
                   90, f"{pod} running")
    return pods


def peers_reachable(core, namespace, pods):
    """From every pod, every other pod's stable name resolves to its IP and answers over TCP."""
    ips = {pod: core.read_namespaced_pod(pod, namespace).status.pod_ip for pod in pods}
    for me in pods:
        for other in pods:
            if other == me:
                continue
            for name in (f"{other}.peers", f"{other}.peers.{namespace}.svc.cluster.local"):
                code, out, err = exec_pod(core, namespace, me, f"getent hosts {name}")
                if code != 0 or out.split()[0] != ips[other]:
                    return False
            code, out, _ = exec_pod(core, namespace, me,
                                    f"busybox nc -w 3 {other}.peers {PORT} </dev/null")
            if code != 0 or out.strip() != other:
                return False
    return True


def test_ready_peers_reach_each_other_by_stable_names(core, apps, namespace):
    pods = make_peers(core, apps, namespace, ready=True, publish_not_ready=False)
    for pod in pods:
        wait_until(lambda: pod_ready(core.read_namespaced_pod(pod, namespace)), 60, f"{pod} ready")
    wait_until(lambda: peers_reachable(core, namespace, pods), 60, "peers reach each other")
    # The headless service's own name gives every ready pod.
    code, out, _ = exec_pod(core, namespace, pods[0], "getent ahostsv4 peers | awk '{print $1}'")
    ips = {core.read_namespaced_pod(p, namespace).status.pod_ip for p in pods}
    assert code == 0 and set(out.split()) == ips


@pytest.mark.parametrize("publish", [True, False], ids=["published", "unpublished"])
def test_not_ready_peers(core, apps, namespace, publish):
    pods = make_peers(core, apps, namespace, ready=False, publish_not_ready=publish)
    assert not any(pod_ready(core.read_namespaced_pod(p, namespace)) for p in pods)
    if publish:
        # publishNotReadyAddresses: the names exist and connect before the pods are Ready.
        wait_until(lambda: peers_reachable(core, namespace, pods), 60, "peers reach each other")
    else:
        # Otherwise a pod that is not Ready has no name (NXDOMAIN: getent exits 2).
        wait_until(lambda: core.read_namespaced_endpoints("peers", namespace).subsets, 30,
                   "the endpoints controller lists the not-ready pods")
        for name in ("peer-1.peers", "peers"):
            code, out, _ = exec_pod(core, namespace, pods[0], f"getent hosts {name}")
            assert (code, out) == (2, "")
    assert not any(pod_ready(core.read_namespaced_pod(p, namespace)) for p in pods)
