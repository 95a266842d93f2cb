"""Teardown on deletion, against an in-memory stand-in for the API (pure logic: which children
are deleted and waited for). tests/e2e proves it on a real cluster."""
import logging
from types import SimpleNamespace

import kopf
import pytest
from prometheus_client import REGISTRY

from privatemodel.controller import consts, handlers, metrics
from privatemodel.controller.schedule import Schedule

MODEL_UID = "model-uid"


def child(kind, name, owner_uid=MODEL_UID, deleting=False):
    meta = {"name": name, "labels": {consts.LABEL_MODEL: "mnist"}}
    if owner_uid:
        meta["ownerReferences"] = [{"uid": owner_uid}]
    if deleting:
        meta["deletionTimestamp"] = "2026-11-27T00:00:00Z"
    return {"kind": kind, "metadata": meta}


class FakeKube:
    """Objects by kind; a foreground delete marks an object deleting, as the API server does."""

    def __init__(self, *objects):
        self.objects = list(objects)
        self.deleted = []

    def list(self, kind, namespace, labels):
        return [o for o in self.objects if o["kind"] == kind
                and all(o["metadata"]["labels"].get(k) == v for k, v in labels.items())]

    def delete(self, kind, namespace, name, foreground=False):
        assert foreground
        self.deleted.append((kind, name))
        for obj in self.objects:
            if (obj["kind"], obj["metadata"]["name"]) == (kind, name):
                obj["metadata"]["deletionTimestamp"] = "now"
        return True


def serving_models():
    return REGISTRY.get_sample_value("privatemodel_operator_models", {"phase": "Serving"})


def tear_down(kube, phases=None):
    handlers.tear_down(name="mnist", namespace="models", uid=MODEL_UID,
                       memo=SimpleNamespace(kube=kube, phases=phases or metrics.PhaseBook(), schedule=Schedule(120)),
                       logger=logging.getLogger("test"))


def test_only_owned_children_are_deleted_and_waited_for():
    kube = FakeKube(child("StatefulSet", "mnist-server0"), child("Service", "mnist-players", deleting=True),
                    child("Pod", "users-pod", owner_uid=None), child("ConfigMap", "users-config", owner_uid="other"))
    with pytest.raises(kopf.TemporaryError, match="waiting for 2 children to go: StatefulSet mnist-server0, "
                                                  "Service mnist-players"):
        tear_down(kube)
    # Already deleting: not deleted again. Not owned: never touched.
    assert kube.deleted == [("StatefulSet", "mnist-server0")]


def test_teardown_ends_when_no_owned_child_is_left_and_the_model_leaves_the_metrics():
    kube = FakeKube(child("Pod", "users-pod", owner_uid=None), child("ConfigMap", "users-config", owner_uid="other"))
    phases = metrics.PhaseBook()
    phases.record(MODEL_UID, "Serving")
    phases.record("other-model", "Serving")
    assert serving_models() == 2
    tear_down(kube, phases)
    assert kube.deleted == []
    assert serving_models() == 1


def test_models_are_counted_by_their_last_phase():
    assert metrics.count_by_phase(["Serving", "Failed", "Serving"]) == {
        "Pending": 0, "Sharing": 0, "Starting": 0, "Serving": 2, "Completed": 0, "Failed": 1}


def test_the_config_pods_mount_goes_only_once_the_pods_are_gone():
    kube = FakeKube(child("StatefulSet", "mnist-server0"), child("ConfigMap", "mnist-hostmap"))
    with pytest.raises(kopf.TemporaryError):
        tear_down(kube)
    assert kube.deleted == [("StatefulSet", "mnist-server0")]
    kube.objects = [o for o in kube.objects if o["kind"] != "StatefulSet"]
    with pytest.raises(kopf.TemporaryError, match="ConfigMap mnist-hostmap"):
        tear_down(kube)
    assert kube.deleted[-1] == ("ConfigMap", "mnist-hostmap")
