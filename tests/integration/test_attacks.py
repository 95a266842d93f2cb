"""A hostile client against real local players and serving: each test runs the attack and asserts it fails.

The local cluster of integration/fixtures.py is the target; the attacker has what any client has: the access
file (URLs and the CA) and its own requests.
"""
import json
import secrets
import socket
import ssl

import numpy as np
import pytest

from integration.support import assert_matches_plaintext, https_call, tcp_sockets
from privatemodel import contract, pki
from privatemodel.runtime.client.client import PrivateClient, ServingError

LOOPBACK = {"127.0.0.1", "::1", "::ffff:127.0.0.1"}


def listening_sockets(pid):
    """(address, port) of every listening TCP socket the process holds."""
    return [(address, port) for address, port, state in tcp_sockets(pid) if state == "0A"]


def test_nothing_listens_beyond_loopback(cluster, serving):
    """Local mode: players' TensorFlow servers, the ingresses, serving and its own TensorFlow server."""
    processes = {name: process.pid for name, process in cluster.players.items()}
    processes["serve"] = serving.process.pid
    for name, pid in processes.items():
        sockets = listening_sockets(pid)
        assert sockets, f"{name} listens nowhere?"
        exposed = [entry for entry in sockets if entry[0] not in LOOPBACK]
        assert exposed == [], f"{name} (pid {pid}) listens beyond loopback: {exposed}"
    # Serving's own TensorFlow server (players fetch from it) is among serve's sockets, on loopback.
    assert len(listening_sockets(processes["serve"])) >= 2


def test_tensorflow_server_refuses_to_start_without_the_loopback_shim(cluster):
    """A player started by importing the code directly (no `privatemodel` command) does not listen at all."""
    from integration.support import run_python

    result = run_python(
        "from privatemodel.runtime.mpc import hostmap; from privatemodel.runtime.player.run import run_player; "
        f"run_player('server2', hostmap.load({str(cluster.hostmap_path)!r}), '/tmp/never')"
    )
    assert result.returncode != 0
    assert "would expose TensorFlow's server on every interface" in result.stderr


def test_model_metadata_holds_no_share(cluster, shared):
    status, metadata = https_call(cluster, cluster.ingress_url("server0") + "/v2/model")
    assert status == 200
    assert set(metadata) == {"player", "shareId", "inputShape", "outputShape", "outputActivation", "encoding", "maxBatch"}
    assert "config" not in json.dumps(metadata) and "weights" not in json.dumps(metadata)


@pytest.mark.parametrize("path", [
    "/v2/requests/../../manifest.json/input",
    "/v2/requests/" + "a" * 31 + "/output",
    "/v2/requests/" + "A" * 32 + "/output",
    "/weights.share",
    "/v2/requests/%2e%2e%2fweights/output",
])
def test_ingress_paths_lead_nowhere_else(cluster, shared, path):
    status, _ = https_call(cluster, cluster.ingress_url("server0") + path, headers={"Authorization": "Bearer " + "t" * 32})
    assert status in (400, 404)


def stage(cluster, holder, request_id, token, share):
    return https_call(cluster, f"{cluster.ingress_url(holder)}/v2/requests/{request_id}/input", "PUT", share.tobytes(),
                      {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream", "X-Batch-Size": str(len(share))})


def test_another_clients_answer_needs_that_clients_token(client, cluster, reference_model):
    """The victim's request id is known to the attacker (say, overheard from serving): not enough."""
    victim_tokens = {holder: secrets.token_urlsafe(32) for holder in contract.SHARE_HOLDERS}
    request_id = secrets.token_hex(16)
    query = (reference_model["x"][:1] * client.scaling_factor).astype(np.int64)
    mask = np.frombuffer(secrets.token_bytes(query.size * 8), np.int64).reshape(query.shape)
    for holder, share in zip(contract.SHARE_HOLDERS, (mask, query - mask)):
        assert stage(cluster, holder, request_id, victim_tokens[holder], share)[0] == 201
    client.serving.request("POST", "/v1/predict", json.dumps({"id": request_id, "count": 1}).encode())

    output = f"/v2/requests/{request_id}/output"
    attacker = {"Authorization": "Bearer " + secrets.token_urlsafe(32)}
    for holder in contract.SHARE_HOLDERS:
        assert https_call(cluster, cluster.ingress_url(holder) + output, headers=attacker)[0] == 403
    # A curious server0 knows the token the victim gave it; server1 accepts only its own.
    server0_token = {"Authorization": f"Bearer {victim_tokens['server0']}"}
    assert https_call(cluster, cluster.ingress_url("server1") + output, headers=server0_token)[0] == 403
    # Replaying the id to stage the attacker's own query under it is refused too.
    assert stage(cluster, "server0", request_id, secrets.token_urlsafe(32), mask)[0] == 409

    # The victim still gets its answer, once; then it is gone.
    parts = []
    for holder in contract.SHARE_HOLDERS:
        status, data = https_call(cluster, cluster.ingress_url(holder) + output, headers={"Authorization": f"Bearer {victim_tokens[holder]}"})
        assert status == 200
        parts.append(np.frombuffer(data, "<i8"))
        assert https_call(cluster, cluster.ingress_url(holder) + output, headers={"Authorization": f"Bearer {victim_tokens[holder]}"})[0] == 404
    assert_matches_plaintext(((parts[0] + parts[1]) / client.scaling_factor).reshape(1, -1), reference_model["plaintext"][:1])


def test_plaintext_http_gets_nothing(cluster, serving):
    for url in (cluster.ingress_url("server0"), serving.url):
        port = int(url.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET /v2/model HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = sock.recv(4096)
        assert b"shareId" not in reply and b"HTTP/1.1 200" not in reply


def test_a_server_with_another_ca_is_not_trusted(cluster, serving, tmp_path):
    """A client must not send shares to a server that is not the model's: another CA, or another party's certificate."""
    access = json.loads(cluster.access_path.read_text())
    foreign_key, foreign_ca = pki.new_ca("impostor")
    with pytest.raises(ServingError, match="is not the model's server0"):
        PrivateClient({**access, "ca": foreign_ca.decode()})
    # server1's ingress where server0's should be: the certificate names server1.
    with pytest.raises(ServingError, match="is not the model's server0"):
        PrivateClient({**access, "server0": access["server1"]})


def test_the_wire_carries_tls(cluster, serving):
    """What a client sends to an ingress starts with a TLS handshake, and the server answers in TLS."""
    port = int(cluster.ingress_url("server0").rsplit(":", 1)[1])
    context = ssl.create_default_context(cafile=str(cluster.tls_dir("serve") / contract.TLS_CA))
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname="server0") as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")
            assert tls.getpeercert()["subject"] == ((("commonName", "server0"),),)
