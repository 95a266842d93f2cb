"""The TLS mesh (a real stunnel on real sockets): who gets through to a party's TensorFlow port.

server0's mesh runs here; its TensorFlow server is stood in for by an echo server on loopback, and
the peer server1 by a TLS server presenting whatever certificate a test gives it.
"""
import socket
import ssl
import threading

import pytest

from privatemodel import contract, pki
from privatemodel.runtime.local.cluster import free_port
from privatemodel.runtime.mpc import hostmap as hostmaps
from privatemodel.runtime.mpc.mesh import Mesh


class EchoServer:
    def __init__(self, context=None, port=0):
        self.listener = socket.create_server(("127.0.0.1", port))
        self.port = self.listener.getsockname()[1]
        self.context = context
        threading.Thread(target=self._serve, daemon=True).start()

    def close(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread, which lets the port go
        self.listener.close()

    def _serve(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(connection,), daemon=True).start()

    def _echo(self, connection):
        try:
            if self.context:
                connection = self.context.wrap_socket(connection, server_side=True)
            while data := connection.recv(4096):
                connection.sendall(data)
        except (OSError, ssl.SSLError):
            pass
        finally:
            connection.close()


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pki")
    ca_key, ca_certificate = pki.new_ca("mesh-test")
    for party in contract.PARTY_NAMES:
        pki.write_tls_dir(root / party, ca_certificate, *pki.issue(ca_key, ca_certificate, party))
    foreign_key, foreign_ca = pki.new_ca("someone else")
    pki.write_tls_dir(root / "foreign", foreign_ca, *pki.issue(foreign_key, foreign_ca, "server1"))
    # Another player triple of the same model has a CA of its own, even under the same name.
    other_key, other_ca = pki.new_ca("mesh-test")
    pki.write_tls_dir(root / "other-triple", other_ca, *pki.issue(other_key, other_ca, "server1"))
    return root


@pytest.fixture(scope="module")
def mesh(pki_dir, tmp_path_factory):
    tensorflow = EchoServer()
    server1 = free_port()
    hostmap = hostmaps.validate({
        "server0": f"127.0.0.1:{tensorflow.port}",
        **{name: f"127.0.0.1:{free_port()}" for name in contract.PARTY_NAMES if name != "server0"},
        "mesh": {**{name: f"127.0.0.1:{free_port()}" for name in contract.PARTY_NAMES}, "server1": f"127.0.0.1:{server1}"},
    })
    running = Mesh("server0", hostmap, pki_dir / "server0", tmp_path_factory.mktemp("mesh")).start()
    yield hostmap
    running.stop()


def exchange(address, context=None, server_hostname=None):
    """Send a ping through `address`; what comes back (b"" if the connection was refused or cut)."""
    host, port = hostmaps.parse_address(address)
    try:
        with socket.create_connection((host, port), timeout=5) as raw:
            connection = context.wrap_socket(raw, server_hostname=server_hostname) if context else raw
            connection.sendall(b"ping")
            return connection.recv(16)
    except (OSError, ssl.SSLError):
        return b""


def client_context(pki_dir, party):
    context = ssl.create_default_context(cafile=str(pki_dir / party / contract.TLS_CA))
    context.load_cert_chain(pki_dir / party / contract.TLS_CERT, pki_dir / party / contract.TLS_KEY)
    return context


def test_a_peer_with_the_models_certificate_reaches_tensorflow(mesh, pki_dir):
    assert exchange(mesh.mesh["server0"], client_context(pki_dir, "server1"), "server0") == b"ping"


def test_no_certificate_no_tensorflow(mesh, pki_dir):
    anonymous = ssl.create_default_context(cafile=str(pki_dir / "server1" / contract.TLS_CA))
    assert exchange(mesh.mesh["server0"], anonymous, "server0") == b""
    # Nor does plain TCP: the attacker's gRPC never reaches TensorFlow.
    assert exchange(mesh.mesh["server0"]) != b"ping"


@pytest.mark.parametrize("holder", ["foreign", "other-triple"])
def test_a_certificate_of_another_ca_is_refused(mesh, pki_dir, holder):
    """Another triple's server1 cannot join this triple's mesh as server1."""
    foreign = ssl.create_default_context(cafile=str(pki_dir / "server1" / contract.TLS_CA))
    foreign.load_cert_chain(pki_dir / holder / contract.TLS_CERT, pki_dir / holder / contract.TLS_KEY)
    assert exchange(mesh.mesh["server0"], foreign, "server0") == b""


@pytest.mark.parametrize("presented, passes", [("server1", True), ("server2", False), ("foreign", False),
                                               ("other-triple", False)])
def test_a_tunnel_talks_only_to_the_peer_it_names(mesh, pki_dir, presented, passes):
    """server0's tunnel to server1 checks that the far end is the model's server1."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki_dir / presented / contract.TLS_CERT, pki_dir / presented / contract.TLS_KEY)
    context.load_verify_locations(pki_dir / "server1" / contract.TLS_CA)
    context.verify_mode = ssl.CERT_REQUIRED
    peer = EchoServer(context, port=hostmaps.parse_address(mesh.mesh["server1"])[1])
    try:
        assert (exchange(mesh["server1"]) == b"ping") is passes
    finally:
        peer.close()
