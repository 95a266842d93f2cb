"""A hostile HTTP peer against the ingress and serving: malformed requests, half-sent ones, resets.

Malformed requests get 400 (414, 431, 505 where HTTP says so) with a one-line reason, never a 500
with exception text; half-sent and trickled ones are cut off by the read deadlines, within the
connection cap; resets cost at most one log line each.
"""
import socket
import time

import pytest

from faults import wire
from faults.outcomes import CLEAR, StillHeld, http_error
from integration.support import assert_matches_plaintext, tcp_sockets
from privatemodel.runtime.mpc.https import MAX_CONNECTIONS, READ_TIMEOUT

NESTED = "[" * 2000 + "]" * 2000  # beyond Python's recursion limit, within serving's body limit
SHARE_PUT = "/v2/requests/" + "a" * 32 + "/input"
TOKEN = "Bearer " + "t" * 32


def predict_body(count: str) -> bytes:
    return ('{"id": "' + "d" * 32 + '", "count": ' + count + "}").encode()


# (endpoint, what was sent, the raw request, the reason expected)
MALFORMED = [
    ("serving", "count Infinity", wire.request_bytes("POST", "/v1/predict", predict_body("Infinity")),
     r"400: request body must be JSON"),
    ("serving", "count 1e400", wire.request_bytes("POST", "/v1/predict", predict_body("1e400")),
     r"400: count must be an integer from 1 to 64, got inf"),
    ("serving", "count NaN", wire.request_bytes("POST", "/v1/predict", predict_body("NaN")),
     r"400: request body must be JSON"),
    ("serving", "JSON nested 2000 deep", wire.request_bytes("POST", "/v1/predict", NESTED.encode()),
     r"400: request body must be JSON"),
    ("serving", "a JSON list", wire.request_bytes("POST", "/v1/predict", b"[1, 2]"), r"400: request body must be JSON"),
    ("serving", "bytes that are not UTF-8", wire.request_bytes("POST", "/v1/predict", b"\xff\xfe{}"), r"400: request body must be JSON"),
    ("serving", "Content-Length: abc", wire.request_bytes("POST", "/v1/predict", b"{}", {"Content-Length": "abc"}),
     r"400: a Content-Length header with a byte count is required"),
    ("serving", "Content-Length: -5", wire.request_bytes("POST", "/v1/predict", b"{}", {"Content-Length": "-5"}),
     r"400: a Content-Length header with a byte count is required"),
    ("serving", "Content-Length: 1e400", wire.request_bytes("POST", "/v1/predict", b"{}", {"Content-Length": "1e400"}),
     r"400: a Content-Length header with a byte count is required"),
    ("serving", "Content-Length: 10**30", wire.request_bytes("POST", "/v1/predict", b"{}", {"Content-Length": "1" + "0" * 30}),
     r"400: request body of 10{30} bytes exceeds the limit of 4096"),
    ("serving", "no Content-Length", wire.request_bytes("POST", "/v1/predict"), r"400: a Content-Length header with a byte count is required"),
    ("serving", "a request line that is not HTTP", b"GARBAGE\r\n\r\n", r"400: .*request"),
    ("serving", "HTTP/9.9", b"GET /healthz HTTP/9.9\r\n\r\n", r"(400|505): "),
    ("serving", "a 70 KB request line", b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", r"414: "),
    ("serving", "150 headers", b"GET /status HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", r"431: "),
    ("server0", "PUT with Content-Length: abc", wire.request_bytes("PUT", SHARE_PUT, b"\0" * 8,
     {"Authorization": TOKEN, "X-Batch-Size": "1", "Content-Length": "abc"}), r"400: a Content-Length header with a byte count is required"),
    ("server0", "PUT with Content-Length: Infinity", wire.request_bytes("PUT", SHARE_PUT, b"\0" * 8,
     {"Authorization": TOKEN, "X-Batch-Size": "1", "Content-Length": "Infinity"}), r"400: a Content-Length header with a byte count is required"),
    ("server0", "PUT with X-Batch-Size: 1e400", wire.request_bytes("PUT", SHARE_PUT, b"\0" * 8,
     {"Authorization": TOKEN, "X-Batch-Size": "1e400"}), r"400: header X-Batch-Size must give the number of inputs in the share"),
    ("server0", "PUT with X-Batch-Size: 10**30", wire.request_bytes("PUT", SHARE_PUT, b"\0" * 8,
     {"Authorization": TOKEN, "X-Batch-Size": "1" + "0" * 30}), r"400: X-Batch-Size must be from 1 to 64, got 10{30}"),
    ("server0", "PUT of 2 GB announced", wire.request_bytes("PUT", SHARE_PUT, b"\0" * 8,
     {"Authorization": TOKEN, "X-Batch-Size": "1", "Content-Length": str(2**31)}), r"400: request body of 2147483648 bytes exceeds the limit of 6272"),
    ("server0", "a request line that is not HTTP", b"\x00\x01\x02 junk\r\n\r\n", r"400: .*request"),
]


def url_of(cluster, serving, endpoint):
    return serving.url if endpoint == "serving" else cluster.ingress_url(endpoint)


@pytest.mark.parametrize("endpoint, tried, data, expected", MALFORMED, ids=[f"{e}: {t}" for e, t, _, _ in MALFORMED])
def test_a_malformed_request_gets_a_one_line_reason(cluster, serving, faults, endpoint, tried, data, expected):
    url = url_of(cluster, serving, endpoint)
    outcome = faults.attempt(f"{endpoint}: {tried}", lambda: http_error(*wire.exchange(cluster, url, data)), expected, deadline=30)
    assert outcome.kind == CLEAR, outcome


def connections_to(pid, port) -> list:
    """The states of the process's TCP connections on its local `port` (its listener left out)."""
    return [state for _, local_port, state in tcp_sockets(pid) if local_port == port and state != "0A"]


def half_sent(cluster, url, kind):
    """A connection that starts a request and stops: mid-handshake, mid-headers or mid-body."""
    sock = socket.create_connection(wire.address(url), timeout=30)
    if kind == "handshake":
        sock.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")  # the first bytes of a TLS ClientHello
        return sock
    tls = wire.tls_wrap(cluster, sock)
    if kind == "headers":
        tls.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Le")
    else:
        tls.sendall(wire.request_bytes("POST", "/v1/predict", b"", {"Content-Length": "100"}) + b'{"id": ')
    return tls


@pytest.mark.parametrize("endpoint", ["serving", "server0"])
def test_hundreds_of_half_sent_requests_are_cut_off_and_predictions_go_on(cluster, serving, client, reference_model, faults, endpoint):
    url = url_of(cluster, serving, endpoint)
    pid = serving.process.pid if endpoint == "serving" else cluster.players[endpoint].pid
    port = wire.address(url)[1]
    kinds = ["handshake", "headers", "body"] * 100
    held = []

    def open_all():
        peak = 0
        for number, kind in enumerate(kinds):
            try:
                held.append(half_sent(cluster, url, kind))
            except OSError:
                pass  # refused at once beyond the cap: what the cap is for
            if number % 10 == 9:
                peak = max(peak, len(connections_to(pid, port)))
        # Every half-sent request is closed by the server within the read deadline (and a margin).
        deadline = time.monotonic() + READ_TIMEOUT + 15
        while connections_to(pid, port) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = connections_to(pid, port)
        if peak > MAX_CONNECTIONS:
            return None  # the cap did not hold
        if left:
            raise StillHeld(f"{len(left)} of {len(held)} half-sent requests still open {READ_TIMEOUT + 15:.0f} s later (peak {peak})")
        return f"{len(held)} connected, {peak} held at most (cap {MAX_CONNECTIONS}), all closed by the server within {READ_TIMEOUT + 15:.0f} s"

    try:
        outcome = faults.attempt(f"{endpoint}: 300 half-sent requests (handshake, headers, body)", open_all,
                                 rf"held at most \(cap {MAX_CONNECTIONS}\)", deadline=READ_TIMEOUT + 60)
    finally:
        for sock in held:
            sock.close()
    assert outcome.kind == CLEAR, outcome
    assert_matches_plaintext(client.predict(reference_model["x"][:2]), reference_model["plaintext"][:2])


@pytest.mark.parametrize("endpoint", ["serving", "server0"])
def test_a_request_sent_a_byte_at_a_time_is_cut_off_at_the_read_deadline(cluster, serving, faults, endpoint):
    """Each byte arrives within the socket timeout: only a deadline on the whole request ends it."""
    url = url_of(cluster, serving, endpoint)
    request = wire.request_bytes("GET", "/status" if endpoint == "serving" else "/v2/model", headers={"X-Padding": "p" * 200})

    def trickle():
        started = time.monotonic()
        with wire.tls_connect(cluster, url, timeout=5) as tls:
            for byte in request:
                try:
                    tls.sendall(bytes([byte]))
                    time.sleep(1.0)
                    if time.monotonic() - started > READ_TIMEOUT + 20:
                        raise StillHeld(f"still sending after {time.monotonic() - started:.0f} s, never cut off")
                except OSError:
                    break
            try:
                reply = tls.recv(4096)
            except OSError as error:
                reply = repr(error).encode()
        return f"cut off after {time.monotonic() - started:.0f} s: {reply[:80]!r}"

    outcome = faults.attempt(f"{endpoint}: a request trickled a byte a second", trickle,
                             r"cut off after (1\d|2[0-5]) s", deadline=READ_TIMEOUT + 40)
    assert outcome.kind == CLEAR, outcome


@pytest.mark.parametrize("endpoint", ["serving", "server0"])
def test_clients_that_reset_mid_answer_cost_a_log_line_each_not_a_trace(cluster, serving, client, reference_model, faults, endpoint):
    url = url_of(cluster, serving, endpoint)
    log_file = serving.process.log_file if endpoint == "serving" else cluster.players[endpoint].log_file
    request = (wire.request_bytes("POST", "/v1/predict", predict_body("1")) if endpoint == "serving"
               else wire.request_bytes("GET", "/v2/model"))
    resets = 50

    def reset_many():
        before = log_file.read_text()
        for _ in range(resets):
            tls = wire.tls_connect(cluster, url)
            tls.sendall(request)
            wire.abort(tls)
        time.sleep(2)  # the server notices each reset when it writes its answer
        new = log_file.read_text()[len(before):]
        lines = new.splitlines()
        if "Traceback" in new or len(lines) > resets:
            return f"{len(lines)} log lines for {resets} resets:\n{new[-1500:]}"
        return f"{len(lines)} log lines for {resets} resets, no trace"

    outcome = faults.attempt(f"{endpoint}: {resets} clients reset the connection before the answer", reset_many,
                             r"\d+ log lines for \d+ resets, no trace", deadline=60)
    assert outcome.kind == CLEAR, outcome
    assert_matches_plaintext(client.predict(reference_model["x"][:1]), reference_model["plaintext"][:1])
