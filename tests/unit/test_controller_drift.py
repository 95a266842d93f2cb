"""Drift: a live child still holds what the operator applied, whatever the API server added."""
import copy

from kubernetes.utils.quantity import parse_quantity

from privatemodel.controller.drift import covers
from privatemodel.controller.kube import patch_content_type
from unit.test_controller_objects import build_all


def stored(manifest):
    """Roughly what the API server stores: defaults added, empty values dropped, quantities canonical."""
    live = copy.deepcopy(manifest)
    live["metadata"].update(uid="u-1", resourceVersion="7", creationTimestamp="2026-11-27T00:00:00Z")
    live["status"] = {"replicas": 1}
    spec = live.get("spec", {})  # ConfigMaps and Secrets have none
    if "template" in spec:
        pod = spec["template"]["spec"]
        for field, default in (("restartPolicy", "Always"), ("dnsPolicy", "ClusterFirst"),
                               ("schedulerName", "default-scheduler")):
            pod.setdefault(field, default)
        for container in pod["containers"]:
            container.update(terminationMessagePath="/dev/termination-log", imagePullPolicy="IfNotPresent")
            for mount in container["volumeMounts"]:
                if mount.get("readOnly") is False:
                    del mount["readOnly"]
            requests = container["resources"].get("requests", {})
            if "memory" in requests:
                requests["memory"] = str(parse_quantity(requests["memory"]))  # e.g. 1Gi stored as 1073741824
    if manifest["kind"] == "Service":
        spec.update(clusterIP=spec.get("clusterIP", "10.0.0.9"), sessionAffinity="None")
        for port in spec["ports"]:
            port.setdefault("targetPort", port["port"])
    return live


def test_every_child_as_stored_still_covers_what_was_applied():
    for key, manifest in build_all().items():
        assert covers(stored(manifest), manifest), key


def test_a_loosened_network_policy_is_drift():
    policy = build_all()["policy_players"]
    live = stored(policy)
    live["spec"]["ingress"].append({})  # allow everything
    assert not covers(live, policy)
    live = stored(policy)
    live["spec"]["podSelector"]["matchLabels"] = {}
    assert not covers(live, policy)


def test_changed_named_items_are_drift_and_added_ones_are_not():
    statefulset = build_all()["server0"]
    live = stored(statefulset)
    live["spec"]["template"]["spec"]["containers"][0]["command"] = ["sh", "-c", "cat /etc/privatemodel/tls/*"]
    assert not covers(live, statefulset)
    live = stored(statefulset)
    # A strategic merge patch keeps an added container: were it drift, the patch would never settle it.
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "busybox"})
    assert covers(live, statefulset)
    live = stored(statefulset)
    del live["metadata"]["labels"][next(iter(statefulset["metadata"]["labels"]))]
    assert not covers(live, statefulset)


def test_quantities_compare_by_value():
    desired = {"resources": {"requests": {"cpu": "1000m", "memory": "1024Mi"}}}
    assert covers({"resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}, desired)
    assert not covers({"resources": {"requests": {"cpu": "2", "memory": "1Gi"}}}, desired)
    # Outside resources, "1" and 1 differ.
    assert not covers({"replicas": "1"}, {"replicas": 1})


def test_empty_and_false_values_may_be_missing():
    assert covers({}, {"nodeSelector": {}, "readOnly": False, "args": []})
    assert not covers({}, {"readOnly": True})


def test_custom_resources_are_patched_with_a_json_merge_patch():
    """The API server refuses a strategic merge patch of a custom resource (415)."""
    assert patch_content_type("ServiceMonitor") == "application/merge-patch+json"
    assert patch_content_type("StatefulSet") == "application/strategic-merge-patch+json"
