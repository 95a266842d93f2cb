"""Bad specs, a lost player and a restarted operator, while another model keeps serving."""
import numpy as np
import pytest

from e2e.conftest import OPERATOR_NAMESPACE, operator_pods
from e2e.support import (
    apply_manifest,
    apply_model,
    children,
    condition,
    create_model_secret,
    example_manifest,
    kubectl,
    operator_metrics,
    predict_in_cluster,
    private_model,
    serving_metrics,
    record_timing,
    wait_for_phase,
    wait_until,
    wait_until_serving,
)
from privatemodel import contract
from privatemodel.controller import consts

STEADY = "steady"  # serves without a request limit, for the whole module


def assert_private_predictions_are_right(core, namespace, reference_model, examples=(3,)):
    logits = predict_in_cluster(core, namespace, STEADY, reference_model["x"][list(examples)])
    plaintext = reference_model["plaintext"][list(examples)]
    assert np.abs(logits - plaintext).max() <= 0.1
    assert (logits.argmax(axis=1) == plaintext.argmax(axis=1)).all()


@pytest.fixture(scope="module")
def steady(kubeconfig, namespace, custom, reference_model):
    create_model_secret(kubeconfig, namespace, "reference-model", reference_model["path"])
    apply_model(kubeconfig, namespace, STEADY, "reference-model")
    wait_until_serving(custom, namespace, STEADY, timeout=300)
    return STEADY


@pytest.mark.parametrize("edit, message", [
    (lambda spec: spec.update(protocol="Paillier"), 'spec.protocol: Unsupported value: "Paillier"'),
    (lambda spec: spec.pop("model"), "spec.model: Required value"),
    (lambda spec: spec.update(inputShape=[1, 0, 28, 1]), "spec.inputShape"),
    (lambda spec: spec.update(serving={"numRequests": 0}), "spec.serving.numRequests"),
], ids=["unknown-protocol", "missing-model", "zero-dimension", "zero-requests"])
def test_the_schema_rejects_a_bad_spec(kubeconfig, namespace, custom, edit, message):
    manifest = example_manifest("rejected")
    edit(manifest["spec"])
    # The API server's schema is the guard (kubectl's own client-side checks vary by version).
    result = apply_manifest(kubeconfig, namespace, manifest, "--validate=false", check=False)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert private_model(custom, namespace, "rejected") is None


def test_a_spec_the_schema_cannot_check_fails_with_the_field_named(kubeconfig, namespace, api, custom):
    manifest = example_manifest("batch-mismatch")
    manifest["spec"]["outputShape"] = [2, 10]  # the batch sizes of input and output differ
    apply_manifest(kubeconfig, namespace, manifest)
    model, _ = wait_for_phase(custom, namespace, "batch-mismatch", "Failed", timeout=60)
    ready = condition(model, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith("spec.outputShape[0]: must equal spec.inputShape[0]"), ready["message"]
    assert not children(api, namespace, "batch-mismatch")  # nothing was built from it


def test_an_image_the_operator_does_not_allow_fails_and_builds_nothing(kubeconfig, namespace, api, custom):
    manifest = example_manifest("foreign-image")
    manifest["spec"]["serving"]["image"] = "busybox:1.36"  # would get the model's Secret mounted
    apply_manifest(kubeconfig, namespace, manifest)
    model, _ = wait_for_phase(custom, namespace, "foreign-image", "Failed", timeout=60)
    ready = condition(model, "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidSpec")
    assert ready["message"].startswith("spec.serving.image: image 'busybox:1.36' is not allowed by this operator")
    assert not children(api, namespace, "foreign-image")


def test_a_missing_model_secret_fails_with_its_name_then_recovers_once_created(
        kubeconfig, namespace, custom, reference_model):
    apply_model(kubeconfig, namespace, "no-secret", "absent-model")
    model, _ = wait_for_phase(custom, namespace, "no-secret", "Failed", timeout=400)
    shared = condition(model, "WeightsShared")
    assert (shared["status"], shared["reason"]) == ("False", "ModelSourceNotFound")
    assert 'secret "absent-model" not found' in shared["message"], shared["message"]
    assert 'secret "absent-model" not found' in condition(model, "Ready")["message"]

    create_model_secret(kubeconfig, namespace, "absent-model", reference_model["path"])
    # The kubelet retries the mount with a back-off of up to about two minutes.
    wait_until_serving(custom, namespace, "no-secret", timeout=400)


def test_a_hand_loosened_network_policy_is_restored(namespace, api, core, custom, steady):
    from kubernetes import client

    networking = client.NetworkingV1Api(api)
    name = f"{STEADY}-players"
    before = networking.read_namespaced_network_policy(name, namespace).spec.ingress
    # Let anyone reach the players' mesh port.
    networking.patch_namespaced_network_policy(name, namespace, [
        {"op": "add", "path": "/spec/ingress/-", "value": {}}])
    assert len(networking.read_namespaced_network_policy(name, namespace).spec.ingress) == len(before) + 1
    wait_until(lambda: networking.read_namespaced_network_policy(name, namespace).spec.ingress == before, 30,
               f"NetworkPolicy {name} restored")
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={STEADY}").items
    assert any(e.reason == "DriftReverted" and name in e.message for e in events)


def test_a_model_deleted_while_its_pods_start_leaves_nothing_behind(kubeconfig, namespace, api, custom):
    apply_model(kubeconfig, namespace, "short-lived", "reference-model")
    wait_until(lambda: children(api, namespace, "short-lived").get("statefulsets"), 60, "its players created")
    kubectl(kubeconfig, "-n", namespace, "delete", "privatemodel", "short-lived", "--wait", "--timeout=120s",
            timeout=150)
    assert private_model(custom, namespace, "short-lived") is None
    # The Secrets follow through the garbage collector once the PrivateModel is gone.
    wait_until(lambda: not children(api, namespace, "short-lived"), 60, "children of short-lived gone")


def refused_model(path):
    """A model with a layer SecureNN serving refuses (LeakyReLU), caught before sharing."""
    import tensorflow as tf

    model = tf.keras.Sequential([
        tf.keras.layers.Conv2D(2, 3, batch_input_shape=(None, 28, 28, 1)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.LeakyReLU(name="leaky"),
        tf.keras.layers.Dense(10),
    ])
    model.save(path, save_format="h5")
    return path


def test_models_that_cannot_be_shared_fail_with_the_reason_while_others_serve(
        kubeconfig, namespace, core, custom, steady, reference_model, tmp_path):
    create_model_secret(kubeconfig, namespace, "refused-model", refused_model(tmp_path / "refused.h5"))
    apply_model(kubeconfig, namespace, "refused", "refused-model")
    apply_model(kubeconfig, namespace, "wrong-shape", "reference-model", input_shape=(1, 32, 32, 1))

    expectations = {
        "refused": "layer 3 'leaky' (LeakyReLU): not supported",
        "wrong-shape": "input shape mismatch: expected (1, 32, 32, 1), the model has (None, 28, 28, 1)",
    }
    for name, message in expectations.items():
        model, _ = wait_for_phase(custom, namespace, name, "Failed", timeout=400)
        shared = condition(model, "WeightsShared")
        assert (shared["status"], shared["reason"]) == ("False", "SharingFailed")
        assert message in shared["message"], shared["message"]
        assert message in condition(model, "Ready")["message"]
    assert private_model(custom, namespace, STEADY)["status"]["phase"] == "Serving"
    assert_private_predictions_are_right(core, namespace, reference_model)


def test_a_deleted_player_pod_is_replaced_and_the_model_shared_again(namespace, core, custom, steady, reference_model):
    before = private_model(custom, namespace, STEADY)["status"]
    core.delete_namespaced_pod(f"{STEADY}-server1-0", namespace)

    model, seconds = wait_until_serving(
        custom, namespace, STEADY, timeout=400,
        check=lambda m: m["status"].get("sharedDigest") not in (None, before["sharedDigest"]))
    record_timing("player pod deleted to Serving again", seconds)
    assert model["status"]["sharedPlayerUIDs"][0] == before["sharedPlayerUIDs"][0]
    assert model["status"]["sharedPlayerUIDs"][1] != before["sharedPlayerUIDs"][1]
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={STEADY}").items
    assert "SharesLost" in {event.reason for event in events}
    assert_private_predictions_are_right(core, namespace, reference_model, examples=(4, 5))


def test_a_drain_evicts_one_player_at_a_time_and_the_model_serves_again(api, namespace, core, custom, steady,
                                                                       reference_model):
    from kubernetes.client.exceptions import ApiException

    from privatemodel.controller.kube import PDB_GROUP, PDB_VERSIONS, served_version

    before = private_model(custom, namespace, STEADY)["status"]
    version = served_version(api, PDB_GROUP, PDB_VERSIONS)

    def evict(player):
        pod = f"{STEADY}-{player}-0"
        core.create_namespaced_pod_eviction(pod, namespace, {
            "apiVersion": f"policy/{version}", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}})

    evict("server0")
    # server0 is gone or not ready yet: the budget refuses a second eviction, as a node drain would see.
    with pytest.raises(ApiException) as refused:
        evict("server1")
    assert refused.value.status == 429, refused.value
    model, seconds = wait_until_serving(
        custom, namespace, STEADY, timeout=400,
        check=lambda m: m["status"].get("sharedDigest") not in (None, before["sharedDigest"]))
    record_timing("player evicted to Serving again", seconds)
    assert model["status"]["sharedPlayerUIDs"][1] == before["sharedPlayerUIDs"][1]
    assert_private_predictions_are_right(core, namespace, reference_model, examples=(6,))


def test_prometheus_reads_the_operators_metrics(namespace, core, steady):
    samples = operator_metrics(core, namespace)
    assert samples['privatemodel_operator_models{phase="Serving"}'] >= 1  # steady, at least
    assert samples['privatemodel_operator_reconciles_total{result="ok"}'] > 0
    assert samples["privatemodel_operator_reconcile_duration_seconds_count"] > 0
    # The NetworkPolicy test before this one had its hand edit reverted.
    assert samples['privatemodel_operator_drift_reverted_total{kind="NetworkPolicy"}'] >= 1


def test_prometheus_reads_servings_metrics_as_its_service_monitor_says(namespace, core, custom, steady):
    samples = serving_metrics(core, custom, namespace, STEADY)
    # The tests before this one sent steady private predictions, each answered.
    assert samples['privatemodel_serving_requests_total{outcome="answered"}'] >= 1
    assert samples["privatemodel_serving_mpc_step_duration_seconds_count"] >= 1
    assert samples["privatemodel_serving_queue_depth"] == 0


def test_a_restarted_operator_converges_without_duplicates(kubeconfig, namespace, api, core, custom, steady):
    apply_model(kubeconfig, namespace, "restarted", "reference-model")
    wait_for_phase(custom, namespace, "restarted", "Sharing", timeout=300)
    before = children(api, namespace, "restarted")
    (old_operator,) = operator_pods(core)
    core.delete_namespaced_pod(old_operator.metadata.name, OPERATOR_NAMESPACE)

    wait_until(lambda: [p for p in operator_pods(core) if p.metadata.uid != old_operator.metadata.uid
                        and p.status.phase == "Running"], 120, "a new operator pod")
    model, _ = wait_until_serving(custom, namespace, "restarted", timeout=400)
    after = children(api, namespace, "restarted")
    # The same players, certificates and sharing Job as before the restart; serving added once.
    for kind in ("statefulsets", "configmaps", "secrets", "jobs", "networkpolicies"):
        assert after[kind] == before[kind], (kind, before, after)
    assert after["services"] == sorted(["restarted-players", "restarted-serving", "restarted-mesh-share",
                                        "restarted-mesh-serve", "restarted-ingress-server0", "restarted-ingress-server1"])
    assert after["statefulsets"] == [f"restarted-{player}" for player in contract.PLAYER_NAMES]
    assert len(after["secrets"]) == len(contract.PARTY_NAMES)
    assert after["deployments"] == ["restarted-serving"]
    assert len(after["jobs"]) == 1
    assert sorted(p for p in after["pods"] if "-server" in p) == [f"restarted-{p}-0" for p in contract.PLAYER_NAMES]
    assert model["status"]["sharingJob"] == after["jobs"][0]
    assert private_model(custom, namespace, STEADY)["status"]["phase"] == "Serving"
    assert consts.FINALIZER in model["metadata"]["finalizers"]
