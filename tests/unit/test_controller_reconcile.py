"""The reconcile state machine, tick by tick, against an in-memory cluster: every phase, a lost
player, Completed, Failed, a missing model Secret, a restart mid-sharing, status written only on
change. The fakes stand in for the API server and the kubelet; tests/e2e proves the same on a
real cluster."""
import copy
import itertools
import json
import logging

import pytest

from privatemodel import contract
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import Triple
from privatemodel.controller.reconcile import serving_unchanged, status_changes, tick
from unit.test_controller_objects import MNIST

NAMESPACE, MODEL, MODEL_UID = "models", "mnist", "model-uid"
uids = (f"pod-uid-{n}" for n in itertools.count())


class FakeCluster:
    """Objects by (kind, name), as the API server would hold them; no controllers run by themselves."""

    pdb_api_version = "policy/v1"

    def __init__(self):
        self.objects: dict[tuple[str, str], dict] = {}
        self.pod_events: dict[str, list[dict]] = {}
        self.created: list[tuple[str, str]] = []

    def get(self, kind, namespace, name):
        return copy.deepcopy(self.objects.get((kind, name)))

    def list(self, kind, namespace, labels):
        return [copy.deepcopy(o) for (k, _), o in self.objects.items() if k == kind
                and all(o["metadata"].get("labels", {}).get(key) == value for key, value in labels.items())]

    def events(self, namespace, involved_name):
        return self.pod_events.get(involved_name, [])

    def create(self, manifest):
        key = (manifest["kind"], manifest["metadata"]["name"])
        assert key not in self.objects, f"{key} created twice"
        self.objects[key] = copy.deepcopy(manifest)
        self.objects[key]["metadata"].setdefault("uid", next(uids))
        self.created.append(key)
        return manifest

    def apply(self, manifest):
        live = self.objects.get((manifest["kind"], manifest["metadata"]["name"]))
        if live is None:
            self.create(manifest)
            return "created"
        if {k: v for k, v in live.items() if k != "status"} == {**manifest, "metadata": {
                **manifest["metadata"], "uid": live["metadata"]["uid"]}}:
            return "unchanged"
        uid = live["metadata"]["uid"]
        live.update(copy.deepcopy(manifest))
        live["metadata"]["uid"] = uid
        return "updated"

    def delete(self, kind, namespace, name, foreground=False):
        return self.objects.pop((kind, name), None) is not None

    def names(self, kind):
        return sorted(name for k, name in self.objects if k == kind)


class FakeReporter:
    def __init__(self):
        self.events: list[tuple[str, str]] = []
        self.messages: list[str] = []
        self.served = None  # serving's /status; None: it does not answer
        self.down: set[int] = set()  # triples whose serving does not answer
        self.asked: list[tuple[str, str]] = []  # (URL, CA) of each status request

    def event(self, event_type, reason, message):
        self.events.append((event_type, reason))
        self.messages.append(message)

    def serving_status(self, url, ca_certificate):
        self.asked.append((url, ca_certificate))
        if self.served is None or any(f"//{Triple(MODEL, t).name('serving')}." in url for t in self.down):
            raise OSError("connection refused")
        return self.served


class Model:
    """A PrivateModel and what the operator, the kubelet and the controllers do to the cluster."""

    def __init__(self, spec=MNIST, defaults=OperatorDefaults()):
        self.cluster, self.reporter, self.defaults = FakeCluster(), FakeReporter(), defaults
        self.body = {"apiVersion": "ml.privatemodel.dev/v1alpha1", "kind": "PrivateModel",
                     "metadata": {"name": MODEL, "namespace": NAMESPACE, "uid": MODEL_UID, "generation": 1},
                     "spec": copy.deepcopy(spec), "status": {}}
        self.written: list[dict] = []

    def tick(self, reporter=None):
        done = tick(self.cluster, reporter or self.reporter, self.defaults, copy.deepcopy(self.body),
                    logging.getLogger("test"))
        changes = status_changes(self.body["status"], done.status)
        self.written.append(changes)
        self.body["status"].update(changes)
        return done.phase

    def condition(self, condition_type):
        return next(c for c in self.body["status"]["conditions"] if c["type"] == condition_type)

    def start_player_pods(self, players=contract.PLAYER_NAMES, ready=True, triple=0):
        names = Triple(MODEL, triple)
        for player in players:
            template = self.cluster.objects[("StatefulSet", names.player_workload(player))]["spec"]["template"]
            self.cluster.objects[("Pod", names.player_pod(player))] = {
                "kind": "Pod", "metadata": {"name": names.player_pod(player), "uid": next(uids),
                                            "labels": dict(template["metadata"]["labels"])},
                "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}

    def sharing_job(self, triple=0):
        prefix = f"{Triple(MODEL, triple).name('sharing')}-"
        (name,) = [name for name in self.cluster.names("Job") if name.startswith(prefix)]
        return self.cluster.objects[("Job", name)]

    def finish_sharing(self, outcome="Complete", message=None, triple=0):
        job = self.sharing_job(triple)
        job["status"] = {"conditions": [{"type": outcome, "status": "True"}]}
        if message:
            self.cluster.objects[("Pod", "sharing-pod")] = {"kind": "Pod", "metadata": {
                "name": "sharing-pod", "labels": {"job-name": job["metadata"]["name"]}, "creationTimestamp": "t"},
                "status": {"containerStatuses": [{"state": {"terminated": {"message": message}}}]}}

    def serving_pod_ready(self, triple=0):
        self.cluster.objects[("Deployment", Triple(MODEL, triple).name("serving"))]["status"] = {
            "observedGeneration": 1, "updatedReplicas": 1, "readyReplicas": 1}

    def reach_serving(self):
        self.tick()
        self.tick()
        self.start_player_pods()
        self.tick()
        self.finish_sharing()
        self.tick()
        self.serving_pod_ready()
        self.reporter.served = {"requestsServed": 0, "numRequests": 3, "completed": False}
        assert self.tick() == "Serving"


def test_a_new_model_goes_pending_sharing_starting_serving():
    model = Model()
    assert model.tick() == "Pending"  # the first tick issues the certificates, and only that
    assert len(model.cluster.names("Secret")) == len(contract.PARTY_NAMES)
    assert "tls" in model.body["status"] and not model.cluster.names("StatefulSet")

    assert model.tick() == "Pending"
    assert model.cluster.names("StatefulSet") == [f"{MODEL}-{p}" for p in contract.PLAYER_NAMES]
    assert model.cluster.names("PodDisruptionBudget") == [f"{MODEL}-players"]
    assert model.body["status"]["readyPlayers"] == "0/3"
    assert not model.cluster.names("Job")

    model.start_player_pods()
    assert model.tick() == "Sharing"
    assert model.condition("WeightsShared")["reason"] == "SharingInProgress"
    assert model.body["status"]["sharingJob"] == model.sharing_job()["metadata"]["name"]

    model.finish_sharing()
    assert model.tick() == "Starting"  # shared; the serving pod is not ready yet
    assert model.cluster.names("Deployment") == [f"{MODEL}-serving"]
    model.serving_pod_ready()
    assert model.tick() == "Starting"  # ready, but serving does not answer its status yet
    assert "does not answer" in model.condition("Serving")["message"]

    model.reporter.served = {"requestsServed": 0, "numRequests": 3, "completed": False}
    assert model.tick() == "Serving"
    assert model.condition("Ready")["status"] == "True"
    reasons = [reason for _, reason in model.reporter.events]
    assert reasons[0] == "CertificatesIssued"
    assert {"PlayersReady", "SharingStarted", "Shared", "ServingReady"} <= set(reasons)
    # Every child is owned by the PrivateModel: deleted with it, found by teardown.
    for (kind, name), obj in model.cluster.objects.items():
        if kind != "Pod":
            assert obj["metadata"]["ownerReferences"][0]["uid"] == MODEL_UID, (kind, name)


def test_a_tick_that_sees_no_change_writes_no_status():
    model = Model()
    model.reach_serving()
    model.tick()
    assert model.written[-1] == {}
    model.reporter.served = {"requestsServed": 2, "numRequests": 3, "completed": False}
    model.tick()
    assert set(model.written[-1]) == {"requestsServed", "triples"}
    assert model.written[-1]["requestsServed"] == 2 and model.written[-1]["triples"][0]["requestsServed"] == 2


def test_a_replaced_player_loses_its_share_and_the_model_is_shared_again():
    model = Model()
    model.reach_serving()
    first_job = model.sharing_job()["metadata"]["name"]
    model.start_player_pods(["server1"], ready=False)  # a new pod: a new UID, no share

    model.tick()
    assert model.condition("WeightsShared")["reason"] == "SharesLost"
    assert ("Warning", "SharesLost") in model.reporter.events
    assert not model.cluster.names("Deployment")  # no serving while the shares are replaced

    model.start_player_pods(["server1"])
    assert model.tick() == "Sharing"
    assert model.sharing_job()["metadata"]["name"] != first_job  # the stale Job is gone
    model.finish_sharing()
    model.tick()
    model.serving_pod_ready()
    assert model.tick() == "Serving"
    assert model.body["status"]["sharedPlayerUIDs"][1] == model.cluster.objects[("Pod", f"{MODEL}-server1-0")][
        "metadata"]["uid"]


def test_completed_stops_serving_and_keeps_the_players():
    model = Model()
    model.reach_serving()
    model.reporter.served = {"requestsServed": 3, "numRequests": 3, "completed": True}
    assert model.tick() == "Completed"
    assert not model.cluster.names("Deployment")
    assert len(model.cluster.names("StatefulSet")) == 3
    assert model.tick() == "Completed"  # and stays so: no serving comes back


def test_a_failed_sharing_job_fails_the_model_with_the_pods_reason():
    model = Model()
    model.tick()
    model.tick()
    model.start_player_pods()
    model.tick()
    model.finish_sharing("Failed", message="Traceback...\nerror: layer 3 'leaky' (LeakyReLU): not supported")
    assert model.tick() == "Failed"
    shared = model.condition("WeightsShared")
    assert shared["reason"] == "SharingFailed"
    assert "layer 3 'leaky' (LeakyReLU): not supported" in shared["message"]
    assert "layer 3 'leaky'" in model.condition("Ready")["message"]
    assert ("Warning", "SharingFailed") in model.reporter.events


def test_a_missing_model_secret_fails_with_its_name_and_recovers_when_created():
    model = Model()
    model.tick()
    model.tick()
    model.start_player_pods()
    model.tick()
    job = model.sharing_job()["metadata"]["name"]
    model.cluster.objects[("Pod", "sharing-pod")] = {"kind": "Pod", "metadata": {
        "name": "sharing-pod", "labels": {"job-name": job}},
        "status": {"containerStatuses": [{"state": {"waiting": {"reason": "ContainerCreating"}}}]}}
    model.cluster.pod_events["sharing-pod"] = [{"reason": "FailedMount", "message":
                                               'MountVolume.SetUp failed for volume "model" : secret "mnist-model" not found'}]
    assert model.tick() == "Failed"
    assert model.condition("WeightsShared")["reason"] == "ModelSourceNotFound"
    assert 'secret "mnist-model" not found' in model.condition("Ready")["message"]

    # The Secret is created; the kubelet mounts it and the pod runs.
    model.cluster.objects[("Pod", "sharing-pod")]["status"] = {"containerStatuses": [{"state": {"running": {}}}]}
    assert model.tick() == "Sharing"


def test_a_restarted_operator_mid_sharing_creates_nothing_twice():
    model = Model()
    model.tick()
    model.tick()
    model.start_player_pods()
    model.tick()
    created = list(model.cluster.created)
    # A new operator process: nothing in memory, only the persisted status and the cluster.
    assert model.tick(reporter=FakeReporter()) == "Sharing"
    assert model.cluster.created == created


@pytest.mark.parametrize("edit, field", [
    (lambda spec: spec.update(outputShape=[2, 10]), "spec.outputShape[0]"),
    (lambda spec: spec["serving"].update(replicas=2), "spec.serving.numRequests"),
    (lambda spec: spec.update(serving={"image": "busybox"}), "spec.serving.image"),
])
def test_an_invalid_spec_fails_and_builds_nothing(edit, field):
    spec = copy.deepcopy(MNIST)
    edit(spec)
    model = Model(spec)
    assert model.tick() == "Failed"
    assert model.condition("Ready")["reason"] == "InvalidSpec"
    assert model.condition("Ready")["message"].startswith(field)
    assert model.cluster.objects == {}


def test_at_rest_only_a_change_in_servings_own_status_calls_for_a_full_tick():
    model = Model()
    model.reach_serving()
    status = model.body["status"]
    assert serving_unchanged(model.reporter, status)
    model.reporter.served = {"requestsServed": 1, "numRequests": 3, "completed": False}
    assert not serving_unchanged(model.reporter, status)  # a request was answered: status must say so
    model.reporter.served = None
    assert not serving_unchanged(model.reporter, status)  # serving does not answer
    assert serving_unchanged(model.reporter, {**status, "phase": "Completed"})  # nothing to ask


def test_a_tick_at_rest_makes_no_writes():
    model = Model()
    model.reach_serving()
    calls = []
    for verb in ("create", "delete"):
        real = getattr(model.cluster, verb)
        setattr(model.cluster, verb, lambda *args, _real=real, _verb=verb, **kwargs: (calls.append(_verb), _real(*args, **kwargs))[1])
    model.tick()
    assert calls == []


def test_servings_service_monitor_lives_and_goes_with_serving():
    model = Model(defaults=OperatorDefaults(service_monitor=True))
    model.reach_serving()
    assert model.cluster.names("ServiceMonitor") == [f"{MODEL}-serving"]
    model.reporter.served = {"requestsServed": 3, "numRequests": 3, "completed": True}
    assert model.tick() == "Completed"
    assert model.cluster.names("ServiceMonitor") == []
    plain = Model()
    plain.reach_serving()
    assert plain.cluster.names("ServiceMonitor") == []  # off by default: no CRD needed


SCALED = {**{key: value for key, value in MNIST.items() if key != "serving"}, "serving": {"replicas": 2}}
TRIPLES = (0, 1)


def reach_serving_scaled(model):
    model.tick()  # triple 0's certificates
    model.tick()  # triple 0's players; triple 1's certificates
    model.tick()  # triple 1's players
    for triple in TRIPLES:
        model.start_player_pods(triple=triple)
    model.tick()
    for triple in TRIPLES:
        model.finish_sharing(triple=triple)
    model.tick()
    for triple in TRIPLES:
        model.serving_pod_ready(triple)
    model.reporter.served = {"requestsServed": 0, "completed": False}
    assert model.tick() == "Serving"


def test_two_triples_each_get_their_own_ca_players_sharing_and_serving():
    model = Model(SCALED)
    assert model.tick() == "Pending"
    assert model.tick() == "Pending"
    # Triple 1's own CA: its Secrets belong to its hostmap (the operator cannot delete Secrets).
    hostmap = model.cluster.objects[("ConfigMap", "mnist-t1-hostmap")]
    issuer = model.body["status"]["triples"][1]["tls"]["issuer"]
    assert issuer != model.body["status"]["tls"]["issuer"]
    triple_secrets = [name for name in model.cluster.names("Secret") if name.startswith("mnist-t1-tls-")]
    assert sorted(triple_secrets) == sorted(f"mnist-t1-tls-{party}-{issuer}" for party in contract.PARTY_NAMES)
    for name in triple_secrets:
        (owner,) = model.cluster.objects[("Secret", name)]["metadata"]["ownerReferences"]
        assert (owner["kind"], owner["uid"]) == ("ConfigMap", hostmap["metadata"]["uid"])
    assert not any(name.startswith("mnist-t1-") for name in model.cluster.names("StatefulSet"))  # not yet mounted

    model.tick()
    assert model.cluster.names("StatefulSet") == sorted(
        Triple(MODEL, t).player_workload(p) for t in TRIPLES for p in contract.PLAYER_NAMES)
    assert model.cluster.names("PodDisruptionBudget") == ["mnist-players"]
    assert model.body["status"]["readyPlayers"] == "0/6"
    for triple in TRIPLES:
        model.start_player_pods(triple=triple)
    assert model.tick() == "Sharing"
    assert model.body["status"]["readyPlayers"] == "6/6"
    jobs = [model.sharing_job(t) for t in TRIPLES]
    # One sharing run per triple, each onto its own players.
    assert jobs[0]["metadata"]["annotations"] != jobs[1]["metadata"]["annotations"]

    model.finish_sharing(triple=0)
    model.finish_sharing(triple=1)
    model.tick()
    model.serving_pod_ready(0)
    model.reporter.served = {"requestsServed": 0, "completed": False}
    # One triple serving is not enough the first time.
    assert model.tick() == "Starting"
    assert model.condition("Serving")["message"].startswith("triple 1: waiting for the serving pod")
    model.serving_pod_ready(1)
    assert model.tick() == "Serving"
    assert model.condition("Serving")["message"] == "2/2 triples serve private predictions"
    assert (model.condition("Degraded")["status"], model.condition("Degraded")["reason"]) == ("False", "AllTriplesServing")
    assert model.cluster.names("Deployment") == ["mnist-serving", "mnist-t1-serving"]
    access = model.body["status"]["triples"][1]["access"]
    assert access["serving"] == "https://mnist-t1-serving.models.svc.cluster.local:8443"


def test_a_lost_triple_degrades_the_model_which_serves_on_and_shares_it_again():
    model = Model(SCALED)
    reach_serving_scaled(model)
    triple_0 = {key: model.body["status"][key] for key in ("sharedDigest", "sharingJob", "sharedPlayerUIDs")}
    lost_job = model.sharing_job(1)["metadata"]["name"]
    model.start_player_pods(["server1"], ready=False, triple=1)  # a new pod: no share
    model.reporter.down = {1}

    assert model.tick() == "Serving"
    degraded = model.condition("Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "SharesLost")
    assert degraded["message"].startswith("triple 1 does not serve: WeightsShared: a player pod holding a share")
    assert ("Warning", "SharesLost") in model.reporter.events
    assert any(m.startswith("Degraded: triple 1 does not serve") for m in model.reporter.messages)
    assert model.body["status"]["readyPlayers"] == "5/6"
    assert model.cluster.names("Deployment") == ["mnist-serving"]  # triple 1's serving stopped, triple 0's goes on
    assert model.condition("Ready")["status"] == "False"

    model.start_player_pods(["server1"], triple=1)
    assert model.tick() == "Serving"
    assert model.sharing_job(1)["metadata"]["name"] != lost_job
    model.finish_sharing(triple=1)
    model.tick()
    model.serving_pod_ready(1)
    model.reporter.down = set()
    assert model.tick() == "Serving"
    assert model.condition("Degraded")["reason"] == "AllTriplesServing"
    assert model.condition("Ready")["status"] == "True"
    # Triple 0 was left alone.
    assert {key: model.body["status"][key] for key in triple_0} == triple_0


def test_a_triples_failed_sharing_does_not_fail_a_model_that_serves():
    model = Model(SCALED)
    reach_serving_scaled(model)
    model.start_player_pods(triple=1)  # all three replaced
    model.tick()
    model.finish_sharing("Failed", message="error: out of memory", triple=1)
    assert model.tick() == "Serving"
    assert model.condition("Degraded")["reason"] == "SharingFailed"
    assert model.condition("Ready")["reason"] == "SharingFailed"


def test_scaling_down_removes_the_extra_triple_and_scaling_up_adds_one():
    model = Model(SCALED)
    reach_serving_scaled(model)
    model.body["spec"]["serving"]["replicas"] = 1
    model.body["metadata"]["generation"] = 2
    assert model.tick() == "Serving"
    leftovers = [key for key, obj in model.cluster.objects.items() if key[0] not in ("Pod", "Secret")
                 and obj["metadata"].get("labels", {}).get("ml.privatemodel.dev/triple") == "1"]
    assert leftovers == []
    # Its Secrets go with its hostmap, through the garbage collector.
    assert ("ConfigMap", "mnist-t1-hostmap") not in model.cluster.objects
    model.tick()
    assert [entry["triple"] for entry in model.body["status"]["triples"]] == [0]
    assert "Degraded" not in [c["type"] for c in model.body["status"]["conditions"]]
    assert model.body["status"]["readyPlayers"] == "3/3"
    assert contract.ACCESS_TRIPLES not in json.loads(model.cluster.objects[("ConfigMap", "mnist-access")]["data"]["access.json"])

    model.body["spec"]["serving"]["replicas"] = 2
    model.body["metadata"]["generation"] = 3
    model.tick()
    model.tick()
    assert "mnist-t1-server0" in model.cluster.names("StatefulSet")
    assert model.tick() == "Serving"  # triple 0 serves on while triple 1 is built


def test_at_rest_each_triples_serving_is_asked_under_its_own_ca():
    model = Model(SCALED)
    reach_serving_scaled(model)
    status = model.body["status"]
    model.reporter.asked.clear()
    assert serving_unchanged(model.reporter, status)
    cas = [status["tls"]["caCertificate"], status["triples"][1]["tls"]["caCertificate"]]
    assert model.reporter.asked == [(f"https://{Triple(MODEL, t).name('serving')}.models.svc.cluster.local:8443/status",
                                     cas[t]) for t in TRIPLES]
    model.reporter.down = {1}
    assert not serving_unchanged(model.reporter, status)
