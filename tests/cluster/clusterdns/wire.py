"""The little of the DNS wire format (RFC 1035) the cluster DNS server needs.

Queries: one question, any flags; extra sections (e.g. an EDNS OPT record) are ignored.
Answers: A and CNAME records for the question's name, with name compression back to it.
"""

import struct
from dataclasses import dataclass

# Record types and classes.
A, NS, CNAME, SOA, PTR, MX, TXT, AAAA, SRV, OPT, ANY = 1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 255
IN = 1
TYPE_NAMES = {A: "A", CNAME: "CNAME", AAAA: "AAAA", SRV: "SRV", PTR: "PTR", ANY: "ANY"}

# Response codes.
NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED = 0, 1, 2, 3, 4, 5

# Header flag bits.
QR, AA, TC, RD, RA = 0x8000, 0x0400, 0x0200, 0x0100, 0x0080
UDP_LIMIT = 512  # a plain (non-EDNS) UDP answer must fit here, else it is truncated (TC)


class FormatError(ValueError):
    """The bytes are not a DNS query this server can read."""


@dataclass
class Query:
    id: int
    flags: int
    name: str  # lower case, without the trailing dot
    qtype: int
    qclass: int
    question: bytes  # the question section as received, echoed in the answer


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """Decode a (possibly compressed) domain name; return it and the offset after it."""
    labels, end, jumps = [], None, 0
    while True:
        if offset >= len(data):
            raise FormatError("name runs past the end")
        length = data[offset]
        if length & 0xC0 == 0xC0:  # pointer
            if offset + 1 >= len(data) or jumps > 16:
                raise FormatError("bad compression pointer")
            if end is None:
                end = offset + 2
            offset = ((length & 0x3F) << 8) | data[offset + 1]
            jumps += 1
            continue
        if length & 0xC0:
            raise FormatError("unknown label type")
        offset += 1
        if length == 0:
            break
        labels.append(data[offset:offset + length].decode("ascii", "replace"))
        offset += length
    return ".".join(labels), (end if end is not None else offset)


def encode_name(name: str) -> bytes:
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            raw = label.encode("ascii")
            if len(raw) > 63:
                raise ValueError(f"label too long: {label!r}")
            out += bytes([len(raw)]) + raw
    return out + b"\0"


def parse_query(data: bytes) -> Query:
    if len(data) < 12:
        raise FormatError("short header")
    qid, flags, qdcount = struct.unpack("!HHH", data[:6])
    if flags & QR:
        raise FormatError("not a query")
    if qdcount != 1:
        raise FormatError(f"{qdcount} questions")
    name, offset = _read_name(data, 12)
    if offset + 4 > len(data):
        raise FormatError("short question")
    qtype, qclass = struct.unpack("!HH", data[offset:offset + 4])
    return Query(qid, flags, name.lower(), qtype, qclass, data[12:offset + 4])


def build_response(query: Query, rcode: int, answers=(), *, authoritative=True,
                   ttl=5, limit=None) -> bytes:
    """Answer `query`. `answers` are (type, value) pairs for the question's name: an IPv4
    address string for A, a domain name for CNAME. With `limit`, an answer that would not fit
    is sent empty with the TC bit, so the client asks again over TCP."""
    flags = QR | (query.flags & (0x7800 | RD)) | rcode  # keep opcode and RD
    if authoritative:
        flags |= AA
    records = b""
    for rtype, value in answers:
        if rtype == A:
            rdata = bytes(int(part) for part in value.split("."))
        elif rtype == CNAME:
            rdata = encode_name(value)
        else:
            raise ValueError(f"cannot encode record type {rtype}")
        # 0xC00C: the name is the question's, which starts right after the 12-byte header.
        records += struct.pack("!HHHIH", 0xC00C, rtype, IN, ttl, len(rdata)) + rdata
    count = len(answers)
    message = struct.pack("!HHHHHH", query.id, flags, 1, count, 0, 0) + query.question + records
    if limit is not None and len(message) > limit:
        message = struct.pack("!HHHHHH", query.id, flags | TC, 1, 0, 0, 0) + query.question
    return message


def error_response(data: bytes, rcode: int) -> bytes:
    """An answer to bytes that could not be parsed: echo the id, no sections."""
    qid = struct.unpack("!H", data[:2])[0] if len(data) >= 2 else 0
    return struct.pack("!HHHHHH", qid, QR | rcode, 0, 0, 0, 0)


def build_query(name: str, qtype: int = A, qid: int = 1, recursion: bool = True) -> bytes:
    """A query, for tests and health checks."""
    header = struct.pack("!HHHHHH", qid, RD if recursion else 0, 1, 0, 0, 0)
    return header + encode_name(name) + struct.pack("!HH", qtype, IN)


def parse_response(data: bytes) -> tuple[int, int, list[tuple[int, str]]]:
    """(rcode, flags, [(type, value)]) of a response: A as dotted quad, CNAME as a name."""
    qid, flags, qdcount, ancount = struct.unpack("!HHHH", data[:8])
    offset = 12
    for _ in range(qdcount):
        _, offset = _read_name(data, offset)
        offset += 4
    answers = []
    for _ in range(ancount):
        _, offset = _read_name(data, offset)
        rtype, _, _, rdlength = struct.unpack("!HHIH", data[offset:offset + 10])
        offset += 10
        rdata = data[offset:offset + rdlength]
        if rtype == A:
            answers.append((A, ".".join(str(b) for b in rdata)))
        elif rtype == CNAME:
            answers.append((CNAME, _read_name(data, offset)[0]))
        else:
            answers.append((rtype, rdata.hex()))
        offset += rdlength
    return flags & 0x000F, flags, answers
