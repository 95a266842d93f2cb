"""Ask a DNS server for a name's A records: prints one address a line; exit 1 if none.

    python -m clusterdns.query --server 172.17.0.1 kubernetes.default.svc.cluster.local
"""

import argparse
import random
import socket
import struct
import sys

from . import wire


def query(server: str, name: str, qtype: int = wire.A, port: int = 53, tcp: bool = False,
          timeout: float = 2.0):
    """(rcode, flags, [(type, value)]) of the server's answer."""
    qid = random.randrange(1, 0xFFFF)
    message = wire.build_query(name, qtype, qid)
    if tcp:
        with socket.create_connection((server, port), timeout=timeout) as sock:
            sock.sendall(struct.pack("!H", len(message)) + message)
            length = struct.unpack("!H", _recv_exactly(sock, 2))[0]
            reply = _recv_exactly(sock, length)
    else:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.sendto(message, (server, port))
            reply, _ = sock.recvfrom(4096)
    if struct.unpack("!H", reply[:2])[0] != qid:
        raise OSError("reply to another query")
    return wire.parse_response(reply)


def _recv_exactly(sock, n):
    out = b""
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise OSError("connection closed")
        out += chunk
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(prog="clusterdns.query")
    parser.add_argument("--server", required=True)
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--tcp", action="store_true")
    parser.add_argument("name")
    args = parser.parse_args(argv)
    try:
        rcode, _, answers = query(args.server, args.name, port=args.port, tcp=args.tcp)
    except OSError as exc:
        print(f"no answer: {exc}", file=sys.stderr)
        return 2
    addresses = [value for rtype, value in answers if rtype == wire.A]
    for address in addresses:
        print(address)
    return 0 if rcode == wire.NOERROR and addresses else 1


if __name__ == "__main__":
    sys.exit(main())
