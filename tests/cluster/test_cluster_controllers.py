"""The controller manager does its work: owner-reference garbage collection, Jobs."""

from kubernetes.client.exceptions import ApiException

from cluster.kube import box_container, pod_log, wait_until


def gone(read):
    try:
        read()
        return False
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise


def test_owned_objects_are_collected_after_their_owner(core, namespace):
    owner = core.create_namespaced_config_map(namespace, {"metadata": {"name": "owner"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}
    core.create_namespaced_config_map(namespace, {
        "metadata": {"name": "child", "ownerReferences": [ref]}, "data": {"a": "b"}})
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "child-pod", "ownerReferences": [ref]},
        "spec": {"terminationGracePeriodSeconds": 0,
                 "containers": [box_container("sleep 3600")]}})
    core.read_namespaced_config_map("child", namespace)

    core.delete_namespaced_config_map("owner", namespace, propagation_policy="Background")
    wait_until(lambda: gone(lambda: core.read_namespaced_config_map("child", namespace)), 60,
               "the owned ConfigMap collected")
    wait_until(lambda: gone(lambda: core.read_namespaced_pod("child-pod", namespace)), 60,
               "the owned Pod collected")


def test_job_runs_to_completion(core, batch, namespace):
    batch.create_namespaced_job(namespace, {
        "metadata": {"name": "once"},
        "spec": {"backoffLimit": 0, "template": {"spec": {
            "restartPolicy": "Never",
            "containers": [box_container("echo computed $((2 + 3))")]}}},
    })
    job = wait_until(lambda: (j := batch.read_namespaced_job("once", namespace)).status.succeeded
                     and j, 90, "job succeeded")
    assert job.status.succeeded == 1 and not job.status.failed
    pods = core.list_namespaced_pod(namespace, label_selector="job-name=once").items
    assert [p.status.phase for p in pods] == ["Succeeded"]
    assert pod_log(core, namespace, pods[0].metadata.name).strip() == "computed 5"
