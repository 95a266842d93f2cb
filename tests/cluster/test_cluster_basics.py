"""The test cluster works: a Ready node, a pod that runs and logs, a Service routing to a pod
from another pod (cluster DNS -> ClusterIP -> kube-proxy's iptables rules -> pod)."""

from cluster.kube import box_container, exec_pod, pod_log, pod_ready, wait_until


def test_node_is_ready(core):
    nodes = core.list_node().items
    assert len(nodes) == 1
    node = nodes[0]
    ready = [c for c in node.status.conditions if c.type == "Ready"]
    assert ready and ready[0].status == "True"
    assert node.status.node_info.container_runtime_version.startswith("docker://")


def test_pod_runs_and_logs(core, namespace):
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "hello"},
        "spec": {"restartPolicy": "Never", "containers": [
            box_container('echo "hello from $(hostname)"; sleep 3600')]},
    })
    wait_until(lambda: core.read_namespaced_pod("hello", namespace).status.phase == "Running",
               60, "pod hello running")
    wait_until(lambda: pod_log(core, namespace, "hello") == "hello from hello\n",
               30, "the pod's log line")
    code, out, _ = exec_pod(core, namespace, "hello", "echo $((6 * 7))")
    assert (code, out.strip()) == (0, "42")


def test_service_routes_to_a_pod_from_another_pod(core, namespace):
    serve = 'mkdir -p /www && hostname > /www/index.html && exec busybox httpd -f -p 8080 -h /www'
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"containers": [box_container(
            serve, ports=[{"containerPort": 8080}],
            readinessProbe={"tcpSocket": {"port": 8080}, "periodSeconds": 1})]},
    })
    core.create_namespaced_service(namespace, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    })
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "client"},
        "spec": {"containers": [box_container("sleep 3600")]},
    })
    for pod in ("web", "client"):
        wait_until(lambda: pod_ready(core.read_namespaced_pod(pod, namespace)), 60, f"{pod} ready")
    cluster_ip = core.read_namespaced_service("web", namespace).spec.cluster_ip

    # The short name, through the pod's DNS search path, resolves to the ClusterIP...
    code, out, err = exec_pod(core, namespace, "client", "getent hosts web")
    assert code == 0, err
    assert out.split()[0] == cluster_ip
    # ...and the ClusterIP routes to the pod behind it.
    # (busybox wget -T crashes in Debian 1.35: coreutils timeout instead)
    fetch = f"timeout 5 busybox wget -q -O - http://web.{namespace}.svc.cluster.local/"
    out = wait_until(lambda: exec_pod(core, namespace, "client", fetch)[1].strip(), 30,
                     "an answer through the service")
    assert out == "web"
