"""Scale-out on a real cluster: spec.serving.replicas 2 runs two independent player triples, each
with its own CA, sharing and serving. Both answer like plaintext Keras, a client spreads its
requests over both, a triple's certificate cannot join the other triple's mesh, and losing a triple
keeps the model answering through the other while the lost one is shared again. Scaling down
removes a triple's every child, Secrets included; scaling up adds one and leaves triple 0 alone.
Throughput against one triple and against both is a benchmark: `make bench-cluster`
(tests/e2e/bench_scaleout.py)."""
import json
import uuid

import numpy as np
import pytest

from e2e.support import (
    apply_manifest,
    children,
    condition,
    create_model_secret,
    example_manifest,
    json_answers,
    kubectl,
    npy_config_map,
    private_model,
    record_timing,
    run_pod,
    wait_until,
    wait_until_serving,
)
from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.naming import Triple, child_name

MODEL = "scaled"
TRIPLES = (Triple(MODEL, 0), Triple(MODEL, 1))

# Run in a client pod: one PrivateClient, each input its own request; one JSON line per answer,
# with the triple that answered it.
PREDICT = r'''
import json, sys
import numpy as np
from privatemodel.runtime.client.client import PrivateClient
client = PrivateClient(sys.argv[1])
for index in range(int(sys.argv[2])):
    logits = client.predict(np.load(f"/data/{index}.npy"))
    print(json.dumps({"logits": logits.tolist(), "triple": client.last_triple}), flush=True)
'''

# Run in a pod holding triple 1's server0 certificate: a TLS handshake with a player's mesh port,
# presenting that certificate and sending gRPC's preface. One JSON line per target.
JOIN = r'''
import json, socket, ssl, sys
for target in json.loads(sys.argv[1]):
    context = ssl.create_default_context(cadata=open(f"/cas/{target['ca']}").read())
    context.load_cert_chain("/cert/tls.crt", "/cert/tls.key")
    try:
        with context.wrap_socket(socket.create_connection((target["ip"], 4450), timeout=10),
                                 server_hostname=target["party"]) as tls:
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            data = tls.recv(64)
            result = f"answered {data[:16]!r}" if data else "closed"
    except ssl.SSLError as error:
        result = f"rejected: {error.reason or type(error).__name__}"
    except OSError as error:
        result = f"closed: {error}"
    print(json.dumps({**target, "result": result}), flush=True)
'''


def access_volume():
    return ("access", consts.ACCESS_DIR, {"configMap": {"name": child_name(MODEL, Component.ACCESS)}})


def predict_with_one_client(core, namespace, examples):
    """[(logits row, triple that answered)] for each example, sent in turn by one client."""
    name = f"client-{uuid.uuid4().hex[:6]}"
    npy_config_map(core, namespace, name, examples)
    phase, log = run_pod(core, namespace, name, ["python3", "-c", PREDICT, f"{consts.ACCESS_DIR}/{contract.ACCESS_FILE}",
                                                 str(len(examples))],
                         volumes=[access_volume(), ("inputs", "/data", {"configMap": {"name": name}})])
    assert phase == "Succeeded", log
    triples = [json.loads(line)["triple"] for line in log.splitlines() if line.startswith("{")]
    return json_answers(log, len(examples)), triples


def assert_like_keras(logits, plaintext):
    assert np.abs(logits - plaintext).max() <= 0.1
    assert (logits.argmax(axis=1) == plaintext.argmax(axis=1)).all()


def entries(model):
    return {entry["triple"]: entry for entry in model["status"]["triples"]}


@pytest.fixture(scope="module")
def scaled(kubeconfig, namespace, custom, reference_model):
    create_model_secret(kubeconfig, namespace, "scaled-model", reference_model["path"])
    manifest = example_manifest(MODEL)
    manifest["spec"]["model"]["secretKeyRef"]["name"] = "scaled-model"
    manifest["spec"]["serving"] = {"replicas": 2}
    apply_manifest(kubeconfig, namespace, manifest)
    model, seconds = wait_until_serving(custom, namespace, MODEL, timeout=900)
    record_timing("apply to Serving (2 triples, images present)", seconds)
    return model


def test_two_triples_each_with_their_own_players_sharing_and_ca(scaled, namespace, apps, batch):
    status = scaled["status"]
    assert status["readyPlayers"] == "6/6"
    assert condition(scaled, "Degraded")["status"] == "False"
    triples = entries(scaled)
    assert sorted(triples) == [0, 1]
    # Triple 0 keeps the names and the place in status it had before scale-out.
    assert triples[1]["tls"]["caCertificate"] != status["tls"]["caCertificate"]
    assert triples[1]["sharedDigest"] != status["sharedDigest"]
    assert triples[1]["sharingJob"].startswith(f"{MODEL}-t1-sharing-")
    assert status["sharingJob"].startswith(f"{MODEL}-sharing-")
    statefulsets = sorted(s.metadata.name for s in apps.list_namespaced_stateful_set(namespace).items
                          if s.metadata.name.startswith(MODEL))
    assert statefulsets == sorted(t.player_workload(p) for t in TRIPLES for p in contract.PLAYER_NAMES)
    jobs = {job.metadata.name: job for job in batch.list_namespaced_job(namespace).items}
    # Two sharing runs, one per triple, each onto its own three player pods.
    shared_onto = [json.loads(jobs[name].metadata.annotations[consts.ANNOTATION_PLAYER_UIDS])
                   for name in (status["sharingJob"], triples[1]["sharingJob"])]
    assert shared_onto == [status["sharedPlayerUIDs"], triples[1]["sharedPlayerUIDs"]]
    assert not set(shared_onto[0]) & set(shared_onto[1])


def test_both_triples_answer_like_keras_and_a_client_uses_both(scaled, namespace, core, custom, reference_model):
    logits, triples = predict_with_one_client(core, namespace, reference_model["x"][:6])
    assert_like_keras(logits, reference_model["plaintext"][:6])
    assert sorted(set(triples)) == [0, 1], triples
    # Round robin: the client took turns.
    assert all(a != b for a, b in zip(triples, triples[1:])), triples
    # Each triple's own serving counted its answers.
    model = wait_until(lambda: (m := private_model(custom, namespace, MODEL))
                       and all(e.get("requestsServed", 0) >= 3 for e in entries(m).values()) and m,
                       60, "both triples' serving counting their answers")
    assert model["status"]["requestsServed"] >= 6


def test_a_triples_certificate_cannot_join_the_other_triples_mesh(scaled, namespace, core):
    """Triple 1's server0 presents its certificate to triple 0's server1 and server2: refused (each
    triple has its own CA). The same certificate is let into triple 1's own server1."""
    pods = {pod.metadata.name: pod.status.pod_ip for pod in core.list_namespaced_pod(namespace).items}
    targets = [{"ip": pods[TRIPLES[0].player_pod(p)], "party": p, "ca": "ca.crt", "triple": 0}
               for p in ("server1", "server2")]
    targets.append({"ip": pods[TRIPLES[1].player_pod("server1")], "party": "server1", "ca": "t1-ca.crt", "triple": 1})
    issuer = entries(scaled)[1]["tls"]["issuer"]
    secret = f"{TRIPLES[1].name(Component.TLS, 'server0')}-{issuer}"
    name = f"joiner-{uuid.uuid4().hex[:6]}"
    phase, log = run_pod(core, namespace, name, ["python3", "-c", JOIN, json.dumps(targets)], volumes=[
        ("cert", "/cert", {"secret": {"secretName": secret}}),
        ("cas", "/cas", {"configMap": {"name": child_name(MODEL, Component.ACCESS)}}),
    ], timeout=180)
    assert phase == "Succeeded", log
    results = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(results) == 3, log
    for result in results:
        if result["triple"] == 0:
            assert result["result"] == "closed" or result["result"].startswith(("rejected", "closed:")), result
        else:
            assert result["result"].startswith("answered"), result


def test_losing_a_triple_keeps_the_model_answering_while_it_is_shared_again(
        scaled, kubeconfig, namespace, core, custom, reference_model):
    before = private_model(custom, namespace, MODEL)
    lost = TRIPLES[1].player_pod("server1")
    core.delete_namespaced_pod(lost, namespace)
    # Triple 1's serving is stopped while its shares are replaced (or, at once, its serving pod is gone).
    core.delete_namespaced_pod(next(p.metadata.name for p in core.list_namespaced_pod(namespace).items
                                    if p.metadata.name.startswith(TRIPLES[1].name(Component.SERVING))), namespace)
    phases = []

    def degraded():
        model = private_model(custom, namespace, MODEL)
        phases.append(model["status"]["phase"])
        flag = condition(model, "Degraded")
        return flag["status"] == "True" and model

    model = wait_until(degraded, 120, "Degraded=True", interval=1)
    assert "triple 1 does not serve" in condition(model, "Degraded")["message"], condition(model, "Degraded")
    # While triple 1 is down the model answers through triple 0, right, every time.
    logits, triples = predict_with_one_client(core, namespace, reference_model["x"][:4])
    assert_like_keras(logits, reference_model["plaintext"][:4])
    assert set(triples) == {0}, triples

    def rebuilt():
        model = private_model(custom, namespace, MODEL)
        phases.append(model["status"]["phase"])
        flag = condition(model, "Degraded")
        return flag["status"] == "False" and flag["reason"] == "AllTriplesServing" and model

    after = wait_until(rebuilt, 900, "triple 1 shared again and serving", interval=2)
    assert set(phases) == {"Serving"}, phases
    # Triple 1 was shared again onto its new pod; triple 0 was left alone.
    assert entries(after)[1]["sharedDigest"] != entries(before)[1]["sharedDigest"]
    for field in ("sharedDigest", "sharedPlayerUIDs", "sharingJob", "tls"):
        assert after["status"][field] == before["status"][field], field
    events = core.list_namespaced_event(namespace, field_selector=f"involvedObject.name={MODEL}").items
    assert any(e.message.startswith("Degraded: triple 1 does not serve") and e.type == "Warning" for e in events)
    logits, triples = predict_with_one_client(core, namespace, reference_model["x"][4:8])
    assert_like_keras(logits, reference_model["plaintext"][4:8])
    assert sorted(set(triples)) == [0, 1], triples


def test_scaling_down_removes_a_triple_and_scaling_up_adds_one_leaving_triple_0_alone(
        scaled, kubeconfig, namespace, api, apps, core, custom, reference_model):
    def triple_0_generations():
        return {s.metadata.name: s.metadata.generation for s in apps.list_namespaced_stateful_set(namespace).items
                if s.metadata.name in {TRIPLES[0].player_workload(p) for p in contract.PLAYER_NAMES}}

    def triple_1_children():
        return [name for names in children(api, namespace, MODEL).values() for name in names
                if name.startswith(TRIPLES[1].prefix + "-")]

    generations = triple_0_generations()
    before = private_model(custom, namespace, MODEL)
    patch = ["-n", namespace, "patch", "privatemodel", MODEL, "--type", "merge", "-p"]
    kubectl(kubeconfig, *patch, json.dumps({"spec": {"serving": {"replicas": 1}}}))
    # Every child of triple 1 goes: workloads, Services, policies, its hostmap, and through it its Secrets.
    wait_until(lambda: not triple_1_children(), 180, "triple 1's children gone")
    model = wait_until(lambda: (m := private_model(custom, namespace, MODEL)) and len(m["status"]["triples"]) == 1
                       and m["status"]["phase"] == "Serving" and m, 60, "status with one triple")
    assert model["status"]["readyPlayers"] == "3/3" and condition(model, "Degraded") is None
    logits, triples = predict_with_one_client(core, namespace, reference_model["x"][:2])
    assert_like_keras(logits, reference_model["plaintext"][:2])
    assert triples == [0, 0]

    kubectl(kubeconfig, *patch, json.dumps({"spec": {"serving": {"replicas": 2}}}))
    after, _ = wait_until_serving(custom, namespace, MODEL, timeout=600, check=lambda m: len(m["status"]["triples"]) == 2
                                  and condition(m, "Degraded")["reason"] == "AllTriplesServing")
    assert triple_0_generations() == generations
    for field in ("sharedDigest", "sharedPlayerUIDs", "tls"):
        assert after["status"][field] == before["status"][field], field
    # A new triple 1: its own new CA and sharing.
    assert entries(after)[1]["tls"]["issuer"] != entries(before)[1]["tls"]["issuer"]
    logits, triples = predict_with_one_client(core, namespace, reference_model["x"][2:6])
    assert_like_keras(logits, reference_model["plaintext"][2:6])
    assert sorted(set(triples)) == [0, 1], triples
