"""The operator's certificates: one CA per model, one certificate per party, and the operator's
own HTTPS call verified against the model's CA and the party's name."""
import http.server
import json
import ssl
import threading

import pytest
from cryptography import x509

from privatemodel import contract, pki
from privatemodel.controller import tls


@pytest.fixture(scope="module")
def issued():
    return tls.issue("mnist")


def test_every_party_gets_a_certificate_naming_it_signed_by_the_models_ca(issued):
    issuance, parties = issued
    assert tuple(parties) == contract.PARTY_NAMES
    ca = x509.load_pem_x509_certificate(issuance.ca_certificate.encode())
    for party, (key, certificate) in parties.items():
        assert key.startswith("-----BEGIN PRIVATE KEY-----")
        cert = x509.load_pem_x509_certificate(certificate.encode())
        cert.verify_directly_issued_by(ca)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == [party]
    # Nothing the operator keeps or writes can sign another certificate.
    assert "PRIVATE KEY" not in json.dumps(issuance.to_status())


def test_issuance_round_trips_through_status_and_names_its_secrets(issued):
    issuance, _ = issued
    assert tls.Issuance.from_status({"tls": issuance.to_status()}) == issuance
    assert tls.Issuance.from_status({}) is None
    assert len(issuance.issuer) == tls.ISSUER_LENGTH
    assert issuance.secret_name("mnist", "server1") == f"mnist-tls-server1-{issuance.issuer}"
    # Another issuance, other Secrets: two CAs' certificates never mix in one model's pods.
    assert tls.issue("mnist")[0].issuer != issuance.issuer


@pytest.fixture(scope="module")
def serving(issued, tmp_path_factory):
    """An HTTPS server with the `serve` party's certificate, as serving presents it."""
    issuance, parties = issued
    key, certificate = parties["serve"]
    directory = pki.write_tls_dir(tmp_path_factory.mktemp("tls"), issuance.ca_certificate.encode(), key.encode(),
                                  certificate.encode())

    class Status(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"path": self.path, "requestsServed": 2}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Status)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / contract.TLS_CERT, directory / contract.TLS_KEY)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_get_json_verifies_the_party_whatever_host_the_url_names(issued, serving):
    issuance, _ = issued
    assert tls.get_json(f"{serving}/status", issuance.ca_certificate, "serve", timeout=5) == {
        "path": "/status", "requestsServed": 2}


def test_get_json_refuses_another_party_or_another_ca(issued, serving):
    issuance, _ = issued
    with pytest.raises(ssl.SSLCertVerificationError, match="server0"):
        tls.get_json(f"{serving}/status", issuance.ca_certificate, "server0", timeout=5)
    other, _ = tls.issue("mnist")
    with pytest.raises(ssl.SSLCertVerificationError):
        tls.get_json(f"{serving}/status", other.ca_certificate, "serve", timeout=5)
