"""The trust boundary on a real cluster (THREATS.md, adversaries 1 and 4): a pod in the model's
namespace, labelled like the model's own pods, cannot run a TensorFlow graph on any party; a
client outside the cluster gets private predictions over HTTPS through NodePorts.

The project's test cluster enforces no NetworkPolicy, so what is checked here is the boundary the
parties draw themselves: TensorFlow on loopback only, and a mesh port that admits only the model's
certificates."""
import collections
import json
import uuid

import numpy as np
import pytest

from e2e.support import (
    access_through_node_ports,
    apply_manifest,
    create_model_secret,
    example_manifest,
    predict_from_host,
    run_pod,
    wait_until_serving,
)
from privatemodel import contract, pki
from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.naming import child_name, selector_labels

MODEL = "guarded"

# Run in the attacker's pod: every TensorFlow port on every party's pod IP, then the mesh port
# with no client certificate and with a certificate of the right name from another CA. One JSON
# line per attempt.
ATTACK = r'''
import json, socket, ssl, sys
targets = json.loads(sys.argv[1])  # party -> pod IP
ca = open("/attack/ca.crt").read()
def tcp(ip, port):
    try:
        socket.create_connection((ip, port), timeout=5).close()
        return "connected"
    except ConnectionRefusedError:
        return "refused"
    except OSError as error:
        return f"error: {error}"
def mesh(ip, party, certificate):
    context = ssl.create_default_context(cadata=ca)  # the model's CA: is this really its party?
    if certificate:
        context.load_cert_chain("/attack/forged.crt", "/attack/forged.key")
    try:
        with context.wrap_socket(socket.create_connection((ip, 4450), timeout=10), server_hostname=party) as tls:
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")  # gRPC's preface
            data = tls.recv(64)
            return "closed" if not data else f"answered {data[:16]!r}"
    except ssl.SSLCertVerificationError as error:
        return f"server not verified: {error}"
    except ssl.SSLError as error:
        return f"rejected: {error.reason or type(error).__name__}"
    except socket.timeout:
        return "accepted: no answer, but not closed"
    except OSError as error:
        return f"closed: {error}"
for party, ip in targets.items():
    for port in range(4440, 4445):
        print(json.dumps({"party": party, "port": port, "result": tcp(ip, port)}))
    for attempt, certificate in (("no certificate", False), ("forged certificate", True)):
        print(json.dumps({"party": party, "port": 4450, "attempt": attempt, "result": mesh(ip, party, certificate)}))
'''


@pytest.fixture(scope="module")
def guarded(kubeconfig, namespace, custom, reference_model):
    create_model_secret(kubeconfig, namespace, "guarded-model", reference_model["path"])
    manifest = example_manifest(MODEL)
    manifest["spec"]["model"]["secretKeyRef"]["name"] = "guarded-model"
    manifest["spec"].pop("serving")
    manifest["spec"]["access"] = {"serviceType": "NodePort"}
    apply_manifest(kubeconfig, namespace, manifest)
    model, _ = wait_until_serving(custom, namespace, MODEL, timeout=400)
    return model


def test_a_client_outside_the_cluster_gets_private_predictions_through_node_ports(
        namespace, core, guarded, reference_model, tmp_path):
    access = access_through_node_ports(core, namespace, MODEL)
    logits = predict_from_host(access, reference_model["x"][6:8], tmp_path)
    plaintext = reference_model["plaintext"][6:8]
    assert np.abs(logits - plaintext).max() <= 0.1
    assert (logits.argmax(axis=1) == plaintext.argmax(axis=1)).all()


def test_peers_addresses_never_leave_the_cluster(namespace, core, guarded):
    services = core.list_namespaced_service(namespace, label_selector=f"{consts.LABEL_MODEL}={MODEL}").items
    exposed = {s.metadata.name: [p.port for p in s.spec.ports] for s in services if s.spec.type != "ClusterIP"}
    assert exposed == {
        child_name(MODEL, Component.SERVING): [contract.SERVING_PORT],
        **{child_name(MODEL, Component.INGRESS, p): [contract.INGRESS_PORT] for p in contract.SHARE_HOLDERS},
    }


def test_a_pod_labelled_like_the_models_own_cannot_reach_any_tensorflow_server(
        namespace, core, custom, guarded, tmp_path):
    pods = core.list_namespaced_pod(namespace, label_selector=f"{consts.LABEL_MODEL}={MODEL}").items
    targets = {pod.metadata.labels.get(consts.LABEL_PLAYER, "serve"): pod.status.pod_ip for pod in pods
               if pod.status.phase == "Running"}
    assert sorted(targets) == sorted([*contract.PLAYER_NAMES, "serve"]), targets
    # A certificate that names server0 (and the other parties' names do no better), from a CA of
    # the attacker's own.
    forged_key, forged_certificate = pki.issue(*pki.new_ca("attacker"), "server0")
    name = f"attacker-{uuid.uuid4().hex[:6]}"
    core.create_namespaced_config_map(namespace, {"metadata": {"name": name}, "data": {
        "ca.crt": guarded["status"]["tls"]["caCertificate"],
        "forged.crt": forged_certificate.decode(), "forged.key": forged_key.decode()}})
    phase, log = run_pod(core, namespace, name, ["python3", "-c", ATTACK, json.dumps(targets)],
                         volumes=[("attack", "/attack", {"configMap": {"name": name}})],
                         labels=selector_labels(MODEL, Component.PLAYERS), timeout=180)
    core.delete_namespaced_pod(name, namespace)  # it carries the model's labels: gone before teardown
    assert phase == "Succeeded", log
    results = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    assert len(results) == len(targets) * 7, log
    print("attempts by outcome:", collections.Counter(r["result"] for r in results))
    for result in results:
        if result["port"] == contract.MESH_PORT:
            # The listener is the model's party (the attacker verified its certificate), and it
            # hangs up on a peer without one of the model's certificates before any gRPC.
            assert result["result"] == "closed" or result["result"].startswith(("rejected", "closed:")), result
        else:
            assert result["result"] == "refused", result
