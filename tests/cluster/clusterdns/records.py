"""Names to records, after CoreDNS's kubernetes plugin (the `cluster.local` zone).

    SVC.NS.svc.ZONE             ClusterIP service: its ClusterIP (A).
                                headless service: the IPs of its endpoints' `addresses` (A).
                                ExternalName service: a CNAME to the external name.
    HOST.SVC.NS.svc.ZONE        the endpoint address of SVC whose hostname is HOST (pods with
                                spec.hostname and spec.subdomain=SVC, e.g. StatefulSet pods behind
                                their headless service), or whose IP written with dashes is HOST.
    A-B-C-D.NS.pod.ZONE         A.B.C.D (CoreDNS's `pods insecure`).
    NS.svc.ZONE, svc.ZONE, ZONE exist, with no records (NODATA).
    anything else in the zone   NXDOMAIN.        names outside the zone: REFUSED (no upstream).

The endpoints controller already decides who is in `addresses`: ready pods, and not-ready ones
too when the service sets publishNotReadyAddresses. Like CoreDNS, `notReadyAddresses` is never
served. Only A (and CNAME) records: other types of an existing name get an empty answer, so a
resolver that asks A and AAAA still takes the A. No SRV, no PTR.
"""

import ipaddress
import threading
from dataclasses import dataclass, field

from . import wire


@dataclass(frozen=True)
class Service:
    cluster_ip: str | None = None  # None for a headless service
    external_name: str | None = None  # ExternalName services


@dataclass(frozen=True)
class Address:
    ip: str
    hostname: str | None = None

    @property
    def endpoint_name(self) -> str:
        return self.hostname or self.ip.replace(".", "-").replace(":", "-")


@dataclass
class Answer:
    rcode: int
    records: list = field(default_factory=list)  # [(wire.A | wire.CNAME, value)]


def service_from_object(svc) -> Service:
    """A kubernetes client V1Service -> Service."""
    spec = svc.spec
    if spec.type == "ExternalName":
        return Service(external_name=spec.external_name)
    ip = spec.cluster_ip
    return Service(cluster_ip=None if ip in (None, "", "None") else ip)


def addresses_from_object(endpoints) -> list[Address]:
    """A kubernetes client V1Endpoints -> its served (ready or published) addresses."""
    out = []
    for subset in endpoints.subsets or []:
        for addr in subset.addresses or []:
            out.append(Address(addr.ip, addr.hostname))
    return out


class Records:
    """The current services and endpoints, fed by the watchers, read by the server threads."""

    def __init__(self, zone: str = "cluster.local"):
        self.zone = zone.strip(".").lower()
        self._lock = threading.Lock()
        self._services: dict[tuple[str, str], Service] = {}
        self._addresses: dict[tuple[str, str], list[Address]] = {}

    # --- updates (from the watchers) ---
    def set_service(self, namespace: str, name: str, service: Service | None) -> None:
        with self._lock:
            if service is None:
                self._services.pop((namespace, name), None)
            else:
                self._services[(namespace, name)] = service

    def set_addresses(self, namespace: str, name: str, addresses: list[Address] | None) -> None:
        with self._lock:
            if addresses is None:
                self._addresses.pop((namespace, name), None)
            else:
                self._addresses[(namespace, name)] = list(addresses)

    def replace_services(self, services: dict) -> None:
        with self._lock:
            self._services = dict(services)

    def replace_addresses(self, addresses: dict) -> None:
        with self._lock:
            self._addresses = {key: list(value) for key, value in addresses.items()}

    # --- lookups ---
    def in_zone(self, name: str) -> bool:
        name = name.strip(".").lower()
        return name == self.zone or name.endswith("." + self.zone)

    def lookup(self, name: str, qtype: int = wire.A) -> Answer:
        name = name.strip(".").lower()
        if not self.in_zone(name):
            return Answer(wire.REFUSED)
        labels = name[: -len(self.zone)].strip(".").split(".") if name != self.zone else []
        labels = [label for label in labels if label]
        records = self._find(labels)
        if records is None:
            return Answer(wire.NXDOMAIN)
        if qtype in (wire.A, wire.ANY):
            return Answer(wire.NOERROR, records)
        if qtype == wire.CNAME:
            return Answer(wire.NOERROR, [r for r in records if r[0] == wire.CNAME])
        return Answer(wire.NOERROR, [])  # the name exists; no records of that type (NODATA)

    def _find(self, labels: list[str]):
        """Records of the name (labels before the zone); [] if it exists with none; None if not."""
        if not labels or labels == ["svc"] or labels == ["pod"]:
            return []
        kind = labels[-1]
        with self._lock:
            if kind == "pod" and len(labels) == 3:
                return self._pod(labels[0])
            if kind != "svc":
                return None
            if len(labels) == 2:  # NS.svc
                namespace = labels[0]
                return [] if any(ns == namespace for ns, _ in self._services) else None
            if len(labels) == 3:  # SVC.NS.svc
                return self._service(labels[1], labels[0])
            if len(labels) == 4:  # HOST.SVC.NS.svc
                return self._endpoint(labels[2], labels[1], labels[0])
            return None

    def _pod(self, dashed: str):
        try:
            return [(wire.A, str(ipaddress.IPv4Address(dashed.replace("-", "."))))]
        except ValueError:
            return None

    def _service(self, namespace: str, name: str):
        service = self._services.get((namespace, name))
        if service is None:
            return None
        if service.external_name:
            return [(wire.CNAME, service.external_name)]
        if service.cluster_ip:
            return [(wire.A, service.cluster_ip)]
        addresses = self._addresses.get((namespace, name), [])
        ips = sorted({a.ip for a in addresses if _is_ipv4(a.ip)})
        return [(wire.A, ip) for ip in ips] or None  # headless without endpoints: NXDOMAIN

    def _endpoint(self, namespace: str, name: str, host: str):
        if (namespace, name) not in self._services:
            return None
        ips = sorted({a.ip for a in self._addresses.get((namespace, name), [])
                      if a.endpoint_name.lower() == host and _is_ipv4(a.ip)})
        return [(wire.A, ip) for ip in ips] or None


def _is_ipv4(ip: str) -> bool:
    try:
        ipaddress.IPv4Address(ip)
        return True
    except ValueError:
        return False
