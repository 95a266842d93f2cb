"""A certificate authority per model and one certificate per party. No TensorFlow here.

Each party's certificate names the party (server0, server1, server2, share, serve) as its only DNS
name: peers and clients verify "this is the model's server1", whatever address they dialled. It is
good for both ends of a TLS connection, since every party is a client of some peers and a server to
others. The CA's key signs the party certificates and is needed nowhere else.
"""
import datetime
import http.client
import os
from pathlib import Path

from privatemodel import contract

VALIDITY = datetime.timedelta(days=3650)


def new_ca(model_name: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) of a fresh CA for one model."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"privatemodel CA {model_name}"[:64])])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    return _key_pem(key), _certificate_pem(certificate)


def issue(ca_key_pem: bytes, ca_certificate_pem: bytes, party: str) -> tuple[bytes, bytes]:
    """(key PEM, certificate PEM) for one party, signed by the model's CA."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    if party not in contract.PARTY_NAMES:
        raise ValueError(f"unknown party {party!r}; expected one of {', '.join(contract.PARTY_NAMES)}")
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    ca_certificate = x509.load_pem_x509_certificate(ca_certificate_pem)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, party)]))
        .issuer_name(ca_certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(party)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH, x509.ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return _key_pem(key), _certificate_pem(certificate)


def write_tls_dir(directory, ca_certificate_pem: bytes, key_pem: bytes, certificate_pem: bytes) -> Path:
    """A party's TLS directory, readable by its owner only (the layout of a kubernetes.io/tls Secret)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    for name, data in ((contract.TLS_CA, ca_certificate_pem), (contract.TLS_CERT, certificate_pem), (contract.TLS_KEY, key_pem)):
        path = directory / name
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as stream:
            stream.write(data)
        os.chmod(path, 0o600)
    return directory


class PartyHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to one of a model's parties, verified as that party (its certificate's only name),
    whatever host the URL names."""

    def __init__(self, host, port, party: str, context, timeout):
        super().__init__(host, port, timeout=timeout, context=context)
        self.party = party

    def connect(self):
        http.client.HTTPConnection.connect(self)
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.party)


def _key_pem(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _certificate_pem(certificate) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return certificate.public_bytes(serialization.Encoding.PEM)
