"""The cluster DNS server: watches services and endpoints, answers over UDP and TCP."""

import logging
import socket
import socketserver
import struct
import threading
import time

from . import wire
from .records import Records, addresses_from_object, service_from_object

log = logging.getLogger("clusterdns")


class Watcher(threading.Thread):
    """Informer-style: list everything, then watch from the list's resourceVersion; relist when
    the watch history is gone (410) or the connection fails."""

    def __init__(self, what, list_fn, on_list, on_event, synced: threading.Event):
        super().__init__(name=f"watch-{what}", daemon=True)
        self.what, self.list_fn, self.on_list, self.on_event = what, list_fn, on_list, on_event
        self.synced = synced

    def run(self):
        from kubernetes import watch
        from kubernetes.client.exceptions import ApiException

        while True:
            try:
                listing = self.list_fn()
                self.on_list(listing.items)
                self.synced.set()
                version = listing.metadata.resource_version
                log.info("%s: listed %d, watching from %s", self.what, len(listing.items), version)
                while True:
                    stream = watch.Watch().stream(self.list_fn, resource_version=version,
                                                  timeout_seconds=300)
                    for event in stream:
                        if event["type"] == "ERROR":
                            raise ApiException(status=event["raw_object"].get("code", 500),
                                               reason=event["raw_object"].get("message"))
                        if event["type"] not in ("ADDED", "MODIFIED", "DELETED"):
                            continue
                        obj = event["object"]
                        version = obj.metadata.resource_version
                        self.on_event(event["type"], obj)
            except ApiException as exc:
                log.info("%s: relisting (%s %s)", self.what, exc.status, exc.reason)
                time.sleep(0.5 if exc.status == 410 else 2)
            except Exception as exc:  # connection refused, reset, timeouts: list again
                log.warning("%s: %s; relisting", self.what, exc)
                time.sleep(2)


def start_watchers(records: Records, core_v1) -> list[threading.Event]:
    def key(obj):
        return obj.metadata.namespace, obj.metadata.name

    def on_services(items):
        records.replace_services({key(s): service_from_object(s) for s in items})

    def on_service(kind, svc):
        records.set_service(*key(svc), None if kind == "DELETED" else service_from_object(svc))

    def on_endpoints_list(items):
        records.replace_addresses({key(e): addresses_from_object(e) for e in items})

    def on_endpoints(kind, eps):
        records.set_addresses(*key(eps), None if kind == "DELETED" else addresses_from_object(eps))

    services, endpoints = threading.Event(), threading.Event()
    Watcher("services", core_v1.list_service_for_all_namespaces, on_services, on_service,
            services).start()
    Watcher("endpoints", core_v1.list_endpoints_for_all_namespaces, on_endpoints_list,
            on_endpoints, endpoints).start()
    return [services, endpoints]


def answer(records: Records, data: bytes, limit: int | None) -> bytes:
    try:
        query = wire.parse_query(data)
    except wire.FormatError as exc:
        log.info("bad query: %s", exc)
        return wire.error_response(data, wire.FORMERR)
    if (query.flags >> 11) & 0xF != 0:  # opcode other than QUERY
        return wire.build_response(query, wire.NOTIMP, authoritative=False)
    if query.qclass != wire.IN:
        return wire.build_response(query, wire.REFUSED, authoritative=False)
    result = records.lookup(query.name, query.qtype)
    log.info("%s %s -> %s %s", wire.TYPE_NAMES.get(query.qtype, query.qtype), query.name,
             result.rcode, [value for _, value in result.records])
    return wire.build_response(query, result.rcode, result.records,
                               authoritative=result.rcode != wire.REFUSED, limit=limit)


def serve_udp(records: Records, sock: socket.socket):
    while True:
        data, peer = sock.recvfrom(4096)
        try:
            sock.sendto(answer(records, data, wire.UDP_LIMIT), peer)
        except OSError as exc:
            log.warning("udp reply to %s: %s", peer, exc)


class TCPHandler(socketserver.BaseRequestHandler):
    records: Records  # set on the subclass made in serve()

    def handle(self):
        self.request.settimeout(10)
        try:
            while True:
                head = self._read(2)
                if not head:
                    return
                data = self._read(struct.unpack("!H", head)[0])
                reply = answer(self.records, data, None)
                self.request.sendall(struct.pack("!H", len(reply)) + reply)
        except (OSError, ValueError):
            return

    def _read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = self.request.recv(n - len(out))
            if not chunk:
                return b""
            out += chunk
        return out


class TCPServer(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def serve(records: Records, address: str, port: int, sync_events=(), sync_timeout=30.0):
    """Bind, wait (bounded) for the first listing, then serve UDP and TCP until killed."""
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    udp.bind((address, port))
    handler = type("Handler", (TCPHandler,), {"records": records})
    tcp = TCPServer((address, port), handler)
    deadline = time.monotonic() + sync_timeout
    for event in sync_events:
        event.wait(max(0.0, deadline - time.monotonic()))
    log.info("serving %s on %s:%d (udp, tcp); synced=%s", records.zone, address, port,
             all(e.is_set() for e in sync_events))
    threading.Thread(target=serve_udp, args=(records, udp), name="udp", daemon=True).start()
    tcp.serve_forever()
