"""The client's HTTPS to the two share holders, against real HTTPS servers (the product's server
class, certificates from the product's CA code): both holders get their request before the client
waits on either, one holder's refusal leaves the other's connection usable, and a kept-alive
connection the server dropped gets one fresh try."""
import ssl
import threading
from http.server import BaseHTTPRequestHandler

import pytest

from privatemodel import contract, pki
from privatemodel.runtime.client.client import ServingError, _exchange, _Party
from privatemodel.runtime.mpc.https import HTTPSServer


class Holder:
    """An HTTPS server named `party`: PUT waits at `barrier` (if set) and answers 201 or `refuse`;
    GET answers 200. Counts connections; with `drop_after_answer`, closes each one after answering
    without saying so (as a server does with an idle kept-alive connection)."""

    def __init__(self, party, ca, tls_root):
        self.barrier, self.refuse, self.drop_after_answer, self.connections = None, None, False, 0
        key, certificate = pki.issue(*ca, party)
        tls_dir = pki.write_tls_dir(tls_root / party, ca[1], key, certificate)
        holder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                holder.connections += 1
                super().setup()

            def do_PUT(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                if holder.barrier:
                    try:
                        holder.barrier.wait()
                    except threading.BrokenBarrierError:
                        return self._answer(504, b"the other holder's request never came")
                self._answer(holder.refuse or 201, b"")

            def do_GET(self):
                self._answer(200, b"share")

            def _answer(self, status, body):
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                self.close_connection = holder.drop_after_answer

            def log_message(self, *args):
                pass

        self.server = HTTPSServer(("127.0.0.1", 0), Handler, tls_dir)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.party = _Party(party, f"https://127.0.0.1:{self.server.server_address[1]}",
                            ssl.create_default_context(cadata=ca[1].decode()), timeout=10)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def holders(tmp_path):
    ca = pki.new_ca("exchange-test")
    started = [Holder(party, ca, tmp_path) for party in contract.SHARE_HOLDERS]
    yield started
    for holder in started:
        holder.close()


def put(holder):
    return holder.party, "PUT", "/v2/requests/x/input", b"share bytes", {}


def test_both_holders_get_their_request_before_the_client_waits_on_either(holders):
    # Each holder answers only once both requests have arrived: sent one after another, the first
    # would wait in vain.
    barrier = threading.Barrier(2, timeout=5)
    for holder in holders:
        holder.barrier = barrier
    outcomes = _exchange([put(holder) for holder in holders])
    assert not any(isinstance(outcome, ServingError) for outcome in outcomes), outcomes
    assert [outcome[0] for outcome in outcomes] == [201, 201]


def test_one_holders_refusal_is_returned_and_both_connections_stay_usable(holders):
    holders[0].refuse = 503
    first, second = _exchange([put(holder) for holder in holders])
    assert isinstance(first, ServingError) and first.status == 503 and "server0" in str(first)
    assert second[0] == 201
    holders[0].refuse = None
    assert [outcome[0] for outcome in _exchange([put(holder) for holder in holders])] == [201, 201]
    assert [holder.connections for holder in holders] == [1, 1]  # kept alive through the refusal


def test_a_kept_alive_connection_the_server_dropped_gets_one_fresh_try(holders):
    for holder in holders:
        holder.drop_after_answer = True
    for _ in range(3):
        outcomes = _exchange([(holder.party, "GET", "/v2/requests/x/output", None, {}) for holder in holders])
        assert [(status, body) for status, _, body in outcomes] == [(200, b"share"), (200, b"share")]
    assert [holder.connections for holder in holders] == [3, 3]


def test_a_holder_that_is_down_is_named_and_the_other_still_answers(holders):
    holders[1].close()
    first, second = _exchange([put(holder) for holder in holders])
    assert first[0] == 201
    assert isinstance(second, ServingError) and second.unreachable and "server1" in str(second)
