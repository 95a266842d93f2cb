"""The HTTPS servers of the parties that face clients: the share holders' ingress and serving.

TLS with the party's certificate (named after the party, signed by the model's CA), handshakes on
the connection's own thread, a deadline on every read and on each request as a whole, a cap on
connections, and one log line (not a trace) when a client goes away.
"""
import json
import logging
import socket
import ssl
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from privatemodel import contract

log = logging.getLogger(__name__)

READ_TIMEOUT = 10.0  # seconds a client may take to send a request
MAX_CONNECTIONS = 128


class _Deadline:
    def __init__(self, due: float, action, deadlines: "_Deadlines"):
        self.due = due
        self.action = action
        self._deadlines = deadlines

    def cancel(self) -> None:
        self._deadlines.cancel(self)


class _Deadlines:
    """The deadlines of every connection a process serves, kept by one thread. A threading.Timer
    per request started a thread each: ~0.14 ms of CPU, and a prediction makes five requests."""

    def __init__(self):
        self._pending = set()
        self._changed = threading.Condition()
        self._thread = None

    def start(self, seconds: float, action) -> _Deadline:
        deadline = _Deadline(time.monotonic() + seconds, action, self)
        with self._changed:
            earliest = min((pending.due for pending in self._pending), default=None)
            self._pending.add(deadline)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deadlines", daemon=True)
                self._thread.start()
            if earliest is None or deadline.due < earliest:  # else the thread wakes in time anyway
                self._changed.notify()
        return deadline

    def cancel(self, deadline: _Deadline) -> None:
        with self._changed:
            self._pending.discard(deadline)

    def _run(self):
        while True:
            with self._changed:
                now = time.monotonic()
                expired = [deadline for deadline in self._pending if deadline.due <= now]
                self._pending.difference_update(expired)
                if not expired:
                    earliest = min((deadline.due for deadline in self._pending), default=None)
                    self._changed.wait(None if earliest is None else earliest - now)
                    continue
            for deadline in expired:
                deadline.action()


_DEADLINES = _Deadlines()


def server_context(tls_dir) -> ssl.SSLContext:
    tls_dir = Path(tls_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(tls_dir / contract.TLS_CERT, tls_dir / contract.TLS_KEY)
    return context


class HTTPSServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, handler_class, tls_dir):
        super().__init__(address, handler_class)
        self._context = server_context(tls_dir)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def get_request(self):
        sock, address = super().get_request()
        # Headers and body leave in two writes: with Nagle's algorithm the body would wait for the
        # client's delayed ACK (~40 ms a response).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self._context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), address

    def process_request(self, request, client_address):
        if not self._slots.acquire(blocking=False):
            log.warning("connection from %s refused: %d connections open", client_address[0], MAX_CONNECTIONS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):
        if not isinstance(sys.exc_info()[1], ConnectionAbortedError):  # logged where it was raised
            log.info("connection from %s ended early", client_address[0])


class JSONHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = READ_TIMEOUT

    # The socket timeout bounds each read. A deadline bounds the handshake and the reading of each
    # request as a whole, so a peer that sends a byte at a time cannot keep a capped slot for ever.

    def setup(self):
        # Handshake before the stream files exist: they hold the socket open after a failed
        # handshake, until the garbage collector finds them.
        self.request.settimeout(self.timeout)
        self._cut_off = False
        self._start_deadline("the TLS handshake")
        try:
            self.request.do_handshake()
        except (ssl.SSLError, OSError) as error:
            if not self._cut_off:
                log.info("TLS handshake with %s failed: %s", self.client_address[0], getattr(error, "reason", None) or error)
            raise ConnectionAbortedError from None
        finally:
            self._deadline.cancel()
        super().setup()

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, TimeoutError, ssl.SSLError) as error:
            if not self._cut_off:
                log.info("connection from %s ended: %s", self.client_address[0], type(error).__name__)
            self.close_connection = True

    def handle_one_request(self):
        try:
            # A kept-alive connection idles until its next request starts, up to the socket timeout.
            if not self.rfile.peek(1):
                self.close_connection = True
                return
        except TimeoutError:
            self.close_connection = True
            return
        self._start_deadline("the request")
        try:
            super().handle_one_request()
        finally:
            self._deadline.cancel()

    def parse_request(self):
        parsed = super().parse_request()
        if parsed and self.headers.get("Content-Length") is None:
            self._deadline.cancel()  # read whole: the handler's own work has no such deadline
        return parsed

    def _start_deadline(self, what):
        self._deadline = _DEADLINES.start(READ_TIMEOUT, lambda: self._cut(what))

    def _cut(self, what):
        self._cut_off = True
        log.info("connection from %s cut off: %s took over %.0f s", self.client_address[0], what, READ_TIMEOUT)
        try:
            self.request.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def log_message(self, *args):  # requests are logged where they are served, with timings
        pass

    def send_error(self, code, message=None, explain=None):
        """The standard library's refusals (a request line that is not HTTP, headers too long) as
        one JSON line like ours; it would send an HTML page, and no status line at all when the
        request line could not be parsed."""
        self.request_version = self.protocol_version
        self.close_connection = True
        reason = message or HTTPStatus(code).phrase
        self.reply_json(code, {"error": reason[:200]}, [("Connection", "close")])

    def read_body(self, limit: int) -> bytes:
        text = self.headers.get("Content-Length")
        if text is None or not text.isdigit():
            raise BadRequest("a Content-Length header with a byte count is required")
        length = int(text)
        if length > limit:
            raise BadRequest(f"request body of {length} bytes exceeds the limit of {limit}")
        body = self.rfile.read(length)
        self._deadline.cancel()  # read whole: the handler's own work has no such deadline
        return body

    def reply_json(self, status, body: dict, headers=()):
        self.reply_bytes(status, json.dumps(body).encode(), "application/json", headers)

    def reply_error(self, status, message: str):
        self.reply_json(status, {"error": message})

    def reply_bytes(self, status, data: bytes, content_type="application/octet-stream", headers=()):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class BadRequest(ValueError):
    """400, with a one-line reason."""


class Refused(Exception):
    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status
