"""The cluster DNS server without a cluster: names to records, and the real server over loopback
answering UDP and TCP queries (records fed by hand instead of by the watchers)."""

import socket
import threading
from types import SimpleNamespace as NS

import pytest

from cluster.clusterdns import wire
from cluster.clusterdns.query import query
from cluster.clusterdns.records import (Address, Records, Service, addresses_from_object,
                                        service_from_object)
from cluster.clusterdns.server import serve

ZONE = "cluster.local"


@pytest.fixture
def records():
    r = Records(ZONE)
    r.set_service("default", "kubernetes", Service(cluster_ip="10.96.0.1"))
    r.set_service("db", "peers", Service())  # headless
    r.set_addresses("db", "peers", [Address("172.17.0.5", "peer-0"),
                                    Address("172.17.0.6", "peer-1"),
                                    Address("172.17.0.7")])
    r.set_service("db", "empty", Service())  # headless, no endpoints
    r.set_service("db", "docs", Service(external_name="docs.example.org"))
    return r


def a_records(answer):
    return [value for rtype, value in answer.records if rtype == wire.A]


def test_cluster_ip_service(records):
    answer = records.lookup("kubernetes.default.svc.cluster.local")
    assert (answer.rcode, a_records(answer)) == (wire.NOERROR, ["10.96.0.1"])
    assert a_records(records.lookup("KUBERNETES.Default.svc.cluster.local.")) == ["10.96.0.1"]


def test_headless_service_gives_its_endpoint_addresses(records):
    answer = records.lookup("peers.db.svc.cluster.local")
    assert a_records(answer) == ["172.17.0.5", "172.17.0.6", "172.17.0.7"]


def test_stable_pod_names_and_dashed_ips(records):
    assert a_records(records.lookup("peer-1.peers.db.svc.cluster.local")) == ["172.17.0.6"]
    assert a_records(records.lookup("172-17-0-7.peers.db.svc.cluster.local")) == ["172.17.0.7"]
    # An address with a hostname is known by it only (as in CoreDNS).
    assert records.lookup("172-17-0-5.peers.db.svc.cluster.local").rcode == wire.NXDOMAIN


@pytest.mark.parametrize("name", [
    "nope.default.svc.cluster.local",       # no such service
    "peer-9.peers.db.svc.cluster.local",    # no such endpoint
    "empty.db.svc.cluster.local",           # headless without endpoints
    "peer-0.peers.other.svc.cluster.local",  # wrong namespace
    "a.b.c.d.e.svc.cluster.local",
    "something.cluster.local",
    "nope.svc.cluster.local",               # namespace without services
])
def test_nxdomain(records, name):
    assert records.lookup(name).rcode == wire.NXDOMAIN


def test_existing_names_without_records_of_the_type_are_nodata(records):
    for name in ("peer-0.peers.db.svc.cluster.local", "kubernetes.default.svc.cluster.local"):
        answer = records.lookup(name, wire.AAAA)
        assert (answer.rcode, answer.records) == (wire.NOERROR, [])
    for name in ("cluster.local", "svc.cluster.local", "db.svc.cluster.local"):
        answer = records.lookup(name)
        assert (answer.rcode, answer.records) == (wire.NOERROR, [])


def test_external_name_and_pod_names(records):
    assert records.lookup("docs.db.svc.cluster.local").records == [(wire.CNAME, "docs.example.org")]
    assert a_records(records.lookup("10-1-2-3.db.pod.cluster.local")) == ["10.1.2.3"]
    assert records.lookup("10-1-2.db.pod.cluster.local").rcode == wire.NXDOMAIN


def test_names_outside_the_zone_are_refused(records):
    assert records.lookup("pypi.org").rcode == wire.REFUSED
    assert records.lookup("cluster.local.example.org").rcode == wire.REFUSED


def test_updates_and_deletes(records):
    records.set_addresses("db", "peers", [Address("172.17.0.9", "peer-0")])
    assert a_records(records.lookup("peer-0.peers.db.svc.cluster.local")) == ["172.17.0.9"]
    assert records.lookup("peer-1.peers.db.svc.cluster.local").rcode == wire.NXDOMAIN
    records.set_service("db", "peers", None)
    assert records.lookup("peer-0.peers.db.svc.cluster.local").rcode == wire.NXDOMAIN


def test_from_kubernetes_objects():
    def svc(cluster_ip, type_="ClusterIP", external_name=None):
        return NS(spec=NS(type=type_, cluster_ip=cluster_ip, external_name=external_name))

    assert service_from_object(svc("10.96.0.7")) == Service(cluster_ip="10.96.0.7")
    assert service_from_object(svc("None")) == Service()
    assert service_from_object(svc(None, "ExternalName", "x.org")) == Service(external_name="x.org")
    endpoints = NS(subsets=[
        NS(addresses=[NS(ip="172.17.0.5", hostname="web-0")],
           not_ready_addresses=[NS(ip="172.17.0.6", hostname="web-1")]),
        NS(addresses=None),
    ])
    # notReadyAddresses are never served: the endpoints controller already moved them into
    # addresses when the service publishes not-ready addresses.
    assert addresses_from_object(endpoints) == [Address("172.17.0.5", "web-0")]
    assert addresses_from_object(NS(subsets=None)) == []


def test_wire_round_trip_and_truncation():
    q = wire.parse_query(wire.build_query("Web.NS.svc.cluster.local", wire.A, qid=77))
    assert (q.id, q.name, q.qtype) == (77, "web.ns.svc.cluster.local", wire.A)
    many = [(wire.A, f"10.0.{i // 250}.{i % 250}") for i in range(60)]
    rcode, flags, answers = wire.parse_response(wire.build_response(q, wire.NOERROR, many))
    assert (rcode, answers) == (wire.NOERROR, many) and flags & wire.AA
    rcode, flags, answers = wire.parse_response(
        wire.build_response(q, wire.NOERROR, many, limit=wire.UDP_LIMIT))
    assert flags & wire.TC and answers == []
    with pytest.raises(wire.FormatError):
        wire.parse_query(b"\x00\x01")


@pytest.fixture
def server(records):
    with socket.socket() as probe:  # a free port (UDP and TCP alike, very likely)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    thread = threading.Thread(target=serve, args=(records, "127.0.0.1", port), daemon=True)
    thread.start()

    def ready():
        try:
            return query("127.0.0.1", "kubernetes.default.svc.cluster.local", port=port,
                         timeout=0.2)
        except OSError:
            return None
    for _ in range(50):
        if ready():
            break
    return port


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
def test_server_answers(server, tcp):
    rcode, flags, answers = query("127.0.0.1", "peers.db.svc.cluster.local", port=server, tcp=tcp)
    assert rcode == wire.NOERROR and flags & wire.AA
    assert [v for _, v in answers] == ["172.17.0.5", "172.17.0.6", "172.17.0.7"]
    assert query("127.0.0.1", "nope.db.svc.cluster.local", port=server, tcp=tcp)[0] == wire.NXDOMAIN
    assert query("127.0.0.1", "pypi.org", port=server, tcp=tcp)[0] == wire.REFUSED
    rcode, _, answers = query("127.0.0.1", "peer-0.peers.db.svc.cluster.local", wire.AAAA,
                              port=server, tcp=tcp)
    assert (rcode, answers) == (wire.NOERROR, [])
