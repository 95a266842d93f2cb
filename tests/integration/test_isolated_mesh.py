"""Parties on hosts of their own (a network namespace each), joined by the TLS mesh; an attacker on a
host of its own on the same network. Real players, real stunnel, real sockets, real packets.
"""
import json
import socket
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from integration.support import assert_matches_plaintext
from privatemodel import contract
from privatemodel.runtime.client.client import PrivateClient
from privatemodel.runtime.local.cluster import LocalCluster, LocalServing

ETH_P_ALL = 0x0003
SO_RCVBUFFORCE = 33  # Linux's; Python's socket module does not name it


@pytest.fixture(scope="module")
def isolated(tmp_path_factory, reference_model):
    cluster = LocalCluster(tmp_path_factory.mktemp("isolated"), isolated=True)
    cluster.up()
    serving = LocalServing(cluster)
    try:
        share = subprocess.run(cluster.share_command(reference_model["path"]), capture_output=True, text=True, timeout=300)
        assert share.returncode == 0, share.stderr[-2000:]
        serving.start()
        yield cluster, serving
    finally:
        serving.stop()
        cluster.down()


class Sniffer:
    """Every TCP payload on the parties' links while it runs: (link, (source address, port),
    (destination address, port), sequence number, bytes). A packet between two parties is seen on
    both links, and a retransmitted one twice on each.

    Frames bridged from one party to another never reach the bridge's own interface: it listens on
    every interface and keeps those of the parties' links (their host-side veth ends).
    """

    def __init__(self, link_prefix):
        self.link_prefix = link_prefix
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        # Room for a whole prediction's traffic: a frame dropped here would break its stream.
        self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 256 * 2**20)
        self.sock.settimeout(0.2)
        self.payloads = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                frame, (interface, *_) = self.sock.recvfrom(2**18)  # a GSO frame can exceed 64 KiB
            except socket.timeout:
                continue
            if not interface.startswith(self.link_prefix):
                continue
            if len(frame) < 34 or frame[12:14] != b"\x08\x00" or frame[23] != 6:  # IPv4, TCP
                continue
            ip_header = (frame[14] & 0x0F) * 4
            tcp = 14 + ip_header
            source_port, destination_port, sequence = struct.unpack("!HHI", frame[tcp:tcp + 8])
            source, destination = (socket.inet_ntoa(frame[26:30]), source_port), (socket.inet_ntoa(frame[30:34]), destination_port)
            payload = frame[tcp + (frame[tcp + 12] >> 4) * 4:]
            if payload:
                self.payloads.append((interface, source, destination, sequence, payload))

    def stop(self):
        self._stop.set()
        self._thread.join()
        self.sock.close()
        return self.payloads


def test_private_predictions_across_hosts_match_keras_and_the_wire_is_tls(isolated, reference_model):
    cluster, _ = isolated
    client = PrivateClient(cluster.access_path)
    sniffer = Sniffer(cluster.network.link_prefix)
    private = client.predict(reference_model["x"][:20])
    payloads = sniffer.stop()
    assert_matches_plaintext(private, reference_model["plaintext"][:20])

    mesh = [p for p in payloads if contract.MESH_PORT in (p[1][1], p[2][1])]
    assert len(mesh) > 50, "the players' rounds went over the mesh"
    everything = b"".join(payload for *_, payload in payloads)
    # gRPC (HTTP/2) in the clear would start with its preface and carry TensorFlow's method names.
    assert b"PRI * HTTP/2.0" not in everything and b"tensorflow.eager" not in everything
    # The client's own traffic is TLS too: no HTTP request line, no share in the clear.
    assert b"PUT /v2/requests" not in everything and b"POST /v1/predict" not in everything
    # Each direction of each mesh connection, as one link saw it, is TLS records back to back.
    segments = {}
    for link, source, destination, sequence, payload in mesh:
        segments.setdefault((link, source, destination), []).append((sequence, payload))
    streams = {key: reassembled(found) for key, found in segments.items()}
    assert all(is_tls_records(stream) for stream in streams.values()), [
        (key, stream[:16]) for key, stream in streams.items() if not is_tls_records(stream)][:3]


def reassembled(segments) -> bytes:
    """A TCP direction's bytes from its segments (sequence number, payload) as captured: in sequence
    order, retransmitted bytes once, up to the first byte the capture missed."""
    first = segments[0][0]
    stream = b""
    for offset, payload in sorted(((sequence - first) % 2**32, payload) for sequence, payload in segments):
        if offset > len(stream):
            break
        stream += payload[len(stream) - offset:]
    return stream


def is_tls_records(stream: bytes) -> bool:
    """Whether bytes, from a quiet connection's next record on, are TLS records back to back: content
    type 20-23 and version 3.x in each 5-byte header, whose length leads to the next (a record may
    span TCP segments, so their starts say nothing); the last one may be cut short."""
    offset = 0
    while offset + 5 <= len(stream):
        if stream[offset] not in (20, 21, 22, 23) or stream[offset + 1] != 3:
            return False
        offset += 5 + int.from_bytes(stream[offset + 3:offset + 5], "big")
    return True


ATTACK = r"""
import json, socket, ssl, sys
hosts, tf_ports, mesh_port = json.loads(sys.argv[1]), json.loads(sys.argv[2]), int(sys.argv[3])
report = {}
for party, host in hosts.items():
    for port in tf_ports:
        try:
            socket.create_connection((host, port), timeout=3).close()
            report[f"{party}:{port}"] = "open"
        except OSError as error:
            report[f"{party}:{port}"] = type(error).__name__
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((host, mesh_port), timeout=3) as raw, context.wrap_socket(raw) as tls:
            tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            report[f"{party}:mesh"] = "answered" if tls.recv(64) else "closed"
    except (OSError, ssl.SSLError) as error:
        report[f"{party}:mesh"] = type(error).__name__
print(json.dumps(report))
"""


def test_an_attacker_on_the_network_reaches_no_tensorflow_server(isolated):
    cluster, _ = isolated
    network = cluster.network
    parties = {name: network.hosts[name] for name in contract.PARTY_NAMES}
    result = subprocess.run(
        network.wrap("attacker", [sys.executable, "-c", ATTACK, json.dumps(parties),
                                  json.dumps(sorted(contract.MESH_TF_PORTS.values())), str(contract.MESH_PORT)]),
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    tensorflow_ports = {key: value for key, value in report.items() if not key.endswith(":mesh")}
    assert set(tensorflow_ports.values()) == {"ConnectionRefusedError"}, tensorflow_ports
    # The mesh listener takes the handshake but, with no model certificate, nothing gets through.
    meshes = {key: value for key, value in report.items() if key.endswith(":mesh") and key.split(":")[0] in contract.PARTY_NAMES}
    assert "answered" not in meshes.values(), meshes


def test_serving_keeps_answering_after_the_attacks(isolated, reference_model):
    cluster, _ = isolated
    client = PrivateClient(cluster.access_path)
    started = time.monotonic()
    assert_matches_plaintext(client.predict(reference_model["x"][20:22]), reference_model["plaintext"][20:22])
    assert time.monotonic() - started < 60
    np.testing.assert_equal(client.input_shape, reference_model["x"].shape[1:])
