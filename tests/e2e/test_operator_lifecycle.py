"""The README's quickstart on a real cluster: apply the example, three private predictions from a
client pod over HTTPS, Completed, then delete leaves nothing behind (Secrets and ConfigMaps
included).

One model goes through the lifecycle once; each stage is a module fixture (Serving, then Completed,
then deleted) that records what its tests check while the model is in that stage. A test asks for
the stage it needs, so any test runs alone or in any order.
"""
import numpy as np
import pytest

from e2e.support import (
    apply_model,
    children,
    condition,
    create_model_secret,
    kubectl,
    predict_in_cluster,
    private_model,
    record_timing,
    run_pod,
    wait_for_phase,
    wait_until,
)
from privatemodel import contract
from privatemodel.controller import consts

MODEL = "mnist"


USERS_POD = "users-pod-with-the-models-label"


@pytest.fixture(scope="module")
def serving(kubeconfig, namespace, core, custom, reference_model):
    """The example applied and Serving, as the README says to watch for; what it is then."""
    create_model_secret(kubeconfig, namespace, "mnist-model", reference_model["path"])
    apply_model(kubeconfig, namespace, MODEL, "mnist-model", num_requests=3)
    model, seconds = wait_for_phase(custom, namespace, MODEL, "Serving", timeout=300)
    record_timing("apply to Serving (example, images present)", seconds)
    selector = f"{consts.LABEL_MODEL}={MODEL}"
    return {
        "model": model,
        "kubectl_get": kubectl(kubeconfig, "-n", namespace, "get", "pm", MODEL).stdout,
        "secrets": core.list_namespaced_secret(namespace, label_selector=selector).items,
        "pods": core.list_namespaced_pod(namespace, label_selector=selector).items,
    }


@pytest.fixture(scope="module")
def completed(serving, namespace, core, apps, custom, reference_model):
    """Three private predictions from a client pod; then the model completes."""
    logits = predict_in_cluster(core, namespace, MODEL, reference_model["x"][:3])
    model, _ = wait_for_phase(custom, namespace, MODEL, "Completed", timeout=60)
    wait_until(lambda: not apps.list_namespaced_deployment(namespace).items, 60, "the serving Deployment gone")
    ready_players = {player: apps.read_namespaced_stateful_set(f"{MODEL}-{player}", namespace).status.ready_replicas
                     for player in contract.PLAYER_NAMES}
    return {"logits": logits, "model": model, "ready_players": ready_players}


@pytest.fixture(scope="module")
def deleted(completed, kubeconfig, namespace, api, core, custom):
    """kubectl delete, with a user's pod carrying the model's label beside the model's children."""
    run_pod(core, namespace, USERS_POD, ["true"], labels={consts.LABEL_MODEL: MODEL})
    made = children(api, namespace, MODEL)
    kubectl(kubeconfig, "-n", namespace, "delete", "privatemodel", MODEL, "--wait", "--timeout=120s", timeout=150)
    return {"children_before": made, "model_after": private_model(custom, namespace, MODEL)}


def test_example_reaches_serving(namespace, serving):
    model = serving["model"]
    # By the time the phase is Serving, every condition holds.
    for condition_type in ("PlayersReady", "WeightsShared", "Serving", "Ready"):
        assert condition(model, condition_type)["status"] == "True", model["status"]
    status = model["status"]
    assert status["readyPlayers"] == "3/3"
    assert status["observedGeneration"] == model["metadata"]["generation"]
    assert status["access"] == {
        "configMap": f"{MODEL}-access",
        "serving": f"https://{MODEL}-serving.{namespace}.svc.cluster.local:{contract.SERVING_PORT}",
        **{p: f"https://{MODEL}-ingress-{p}.{namespace}.svc.cluster.local:{contract.INGRESS_PORT}"
           for p in contract.SHARE_HOLDERS},
    }
    assert status["tls"]["caCertificate"].startswith("-----BEGIN CERTIFICATE-----")


def test_each_party_has_its_own_secret_and_pods_carry_no_token(serving):
    issuer = serving["model"]["status"]["tls"]["issuer"]
    secrets = serving["secrets"]
    assert sorted(s.metadata.name for s in secrets) == sorted(f"{MODEL}-tls-{p}-{issuer}" for p in contract.PARTY_NAMES)
    assert all(s.type == "kubernetes.io/tls" and s.metadata.owner_references[0].kind == consts.KIND for s in secrets)
    for pod in serving["pods"]:
        mounted = [source.secret.name for volume in pod.spec.volumes if volume.projected
                   for source in volume.projected.sources if source.secret]
        assert len(mounted) == 1 and mounted[0].startswith(f"{MODEL}-tls-"), (pod.metadata.name, mounted)
        assert not any(volume.secret for volume in pod.spec.volumes if volume.name != "model"), pod.metadata.name
        assert pod.spec.automount_service_account_token is False, pod.metadata.name


def test_kubectl_get_shows_phase_ready_and_served(serving):
    header, row = serving["kubectl_get"].splitlines()
    assert header.split() == ["NAME", "PHASE", "READY", "SERVED", "AGE"]
    assert row.split()[:3] == [MODEL, "Serving", "3/3"]


def test_three_private_predictions_match_plaintext_then_completed(completed, reference_model):
    plaintext = reference_model["plaintext"][:3]
    assert np.abs(completed["logits"] - plaintext).max() <= 0.1
    assert (completed["logits"].argmax(axis=1) == plaintext.argmax(axis=1)).all()
    model = completed["model"]
    assert model["status"]["requestsServed"] == 3
    assert condition(model, "Serving")["reason"] == "RequestsCompleted"
    # Serving stopped (the fixture waited for its Deployment to go); the players keep their
    # shares until the PrivateModel is deleted.
    assert completed["ready_players"] == {player: 1 for player in contract.PLAYER_NAMES}


def test_each_transition_is_an_event(completed, namespace, core):
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={MODEL}").items
    reasons = {event.reason for event in events if event.involved_object.kind == consts.KIND}
    assert {"CertificatesIssued", "Sharing", "Serving", "Completed", "PlayersReady", "Shared", "ServingReady",
            "RequestsCompleted"} <= reasons


def test_runtime_pods_request_and_limit_memory(serving):
    """The chart's measured defaults: no runtime pod is BestEffort, evicted first with its share."""
    pods = serving["pods"]
    assert {p.metadata.labels[consts.LABEL_COMPONENT] for p in pods} >= {"players", "sharing", "serving"}
    for pod in pods:
        (container,) = pod.spec.containers
        assert container.resources.requests["memory"] and container.resources.limits["memory"], pod.metadata.name
        assert pod.status.qos_class == "Burstable", pod.metadata.name


def test_delete_removes_every_child_and_nothing_else(deleted, namespace, api):
    made = deleted["children_before"]
    made["pods"].remove(USERS_POD)
    assert made["statefulsets"] == [f"{MODEL}-{player}" for player in contract.PLAYER_NAMES]
    assert made["networkpolicies"] == sorted(f"{MODEL}-{c}" for c in ("players", "sharing", "serving"))
    assert made["configmaps"] == [f"{MODEL}-access", f"{MODEL}-hostmap"]
    assert made["poddisruptionbudgets"] == [f"{MODEL}-players"]
    assert len(made["secrets"]) == len(contract.PARTY_NAMES)
    assert deleted["model_after"] is None  # the finalizer was removed
    # The finalizer waited for every owned child (and, in the foreground, for what they own); the
    # Secrets follow through the garbage collector. The user's pod stays.
    wait_until(lambda: children(api, namespace, MODEL) == {"pods": [USERS_POD]}, 60, f"children of {MODEL} gone")
