"""The model's certificates as the operator handles them, and its one HTTPS call to serving.

The operator issues a CA and one certificate per party once per PrivateModel (privatemodel.pki),
writes each party's key into a Secret of its own, and keeps only the CA certificate (in status):
the CA key ends with `issue`, so nothing can sign another certificate for the model later.
"""
import hashlib
import json
import ssl
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass

from privatemodel import contract, pki
from privatemodel.controller.naming import tls_secret_name

ISSUER_LENGTH = 8


@dataclass(frozen=True)
class Issuance:
    """One set of party certificates: `issuer` (a hash of the CA certificate) names their Secrets."""

    issuer: str
    ca_certificate: str  # PEM

    def secret_name(self, prefix: str, party: str) -> str:
        """`prefix`: the model's name, or a triple's (naming.Triple.prefix)."""
        return tls_secret_name(prefix, party, self.issuer)

    def to_status(self) -> dict:
        return {"issuer": self.issuer, "caCertificate": self.ca_certificate}

    @classmethod
    def from_status(cls, status: Mapping) -> "Issuance | None":
        tls = status.get("tls") or {}
        if not tls.get("issuer") or not tls.get("caCertificate"):
            return None
        return cls(issuer=tls["issuer"], ca_certificate=tls["caCertificate"])


def issue(name: str) -> tuple[Issuance, dict[str, tuple[str, str]]]:
    """A fresh CA and {party: (key PEM, certificate PEM)} for every party; the CA key is dropped.

    One per player triple (`name`: naming.Triple.prefix): a party verifies its peers by party name
    under its CA, so a CA shared by two triples would let one triple's server0 join the other's mesh."""
    ca_key, ca_certificate = pki.new_ca(name)
    parties = {}
    for party in contract.PARTY_NAMES:
        key, certificate = pki.issue(ca_key, ca_certificate, party)
        parties[party] = (key.decode(), certificate.decode())
    issuer = hashlib.sha256(ca_certificate).hexdigest()[:ISSUER_LENGTH]
    return Issuance(issuer=issuer, ca_certificate=ca_certificate.decode()), parties


def get_json(url: str, ca_certificate: str, party: str, timeout: float):
    """GET an HTTPS URL of one of the model's parties, verifying its certificate names `party`
    (whatever host the URL names: party certificates carry only the party's name)."""
    parts = urllib.parse.urlsplit(url)
    context = ssl.create_default_context(cadata=ca_certificate)
    connection = pki.PartyHTTPSConnection(parts.hostname, parts.port, party, context, timeout)
    try:
        connection.request("GET", parts.path or "/")
        response = connection.getresponse()
        if response.status != 200:
            raise OSError(f"HTTP {response.status} from {url}")
        return json.load(response)
    finally:
        connection.close()
