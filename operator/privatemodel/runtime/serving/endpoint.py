"""The serving endpoint: HTTP for coordination only. No share, query or answer crosses it.

GET  /healthz      200 once a client can safely connect (shares loaded, graphs warm), else 503
GET  /status       {"ready", "requestsServed", "numRequests", "completed"}
POST /v1/predict   {"key": "<request key>", "count": n}: the client staged its input shares under
                   key; the answer's shares are staged under the same key when this returns 200.
Requests run one at a time on one worker thread (TensorFlow graphs on the players), in arrival order.
"""
import json
import logging
import queue
import threading
import time
from concurrent.futures import Future
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from privatemodel.runtime.serving.server import RequestError

log = logging.getLogger(__name__)

MAX_BODY = 4096


class ServingEndpoint:
    def __init__(self, server, port: int, host: str = "0.0.0.0", num_requests=None, wait_after_complete=False):
        self.server = server
        self.num_requests = num_requests
        self.wait_after_complete = wait_after_complete
        self.ready = False
        self.requests_served = 0
        self.finished = threading.Event()  # set when serving should end (SIGTERM, N answered, player lost)
        self.failure = None  # why serving had to stop, if it was not asked to
        self._jobs = queue.Queue()
        self._accepting = True
        self._state_lock = threading.Lock()
        self.http = ThreadingHTTPServer((host, port), _handler_for(self))
        self.http.daemon_threads = True
        self.port = self.http.server_address[1]

    @property
    def completed(self) -> bool:
        return self.num_requests is not None and self.requests_served >= self.num_requests

    def status(self) -> dict:
        return {
            "ready": self.ready,
            "requestsServed": self.requests_served,
            "numRequests": self.num_requests,
            "completed": self.completed,
        }

    def start_http(self) -> None:
        threading.Thread(target=self.http.serve_forever, name="http", daemon=True).start()
        log.info("serving endpoint listening on port %d", self.port)

    def run(self, check_players=None, check_interval: float = 2.0) -> None:
        """Answer requests until finished; the request in flight completes unless a player was lost.

        check_players() raises when a player is gone: serving then stops at once with `failure` set,
        since graphs cannot finish without all three players.
        """
        worker = threading.Thread(target=self._work, name="worker", daemon=True)
        worker.start()
        if check_players:
            threading.Thread(target=self._watch, args=(check_players, check_interval), name="watch", daemon=True).start()
        self.finished.wait()
        with self._state_lock:
            self._accepting = False
        if self.failure is None:
            self._jobs.put(None)
            worker.join()
        self.http.shutdown()

    def _watch(self, check_players, interval):
        while not self.finished.wait(interval):
            try:
                check_players()
            except ConnectionError as error:
                log.error("%s; serving stops", error)
                self.failure = error
                self.ready = False
                self.finished.set()

    def submit(self, key, count) -> Future:
        """Queued in arrival order; the future holds None or the RequestError."""
        future = Future()
        with self._state_lock:
            if not self._accepting or self.completed:
                raise _Refused(HTTPStatus.GONE, "this model has answered all its requests" if self.completed else "shutting down")
            if not self.ready:
                raise _Refused(HTTPStatus.SERVICE_UNAVAILABLE, "not ready yet")
            self._jobs.put((key, count, future))
        return future

    def _work(self):
        while True:
            job = self._jobs.get()
            if job is None:
                break
            key, count, future = job
            started = time.monotonic()
            try:
                self.server.predict(key, count)
            except RequestError as error:
                log.warning("request rejected: %s", error)
                future.set_result(error)
                continue
            except Exception as error:  # noqa: BLE001 - reported to the client and logged; serving goes on
                log.exception("request failed")
                future.set_exception(error)
                continue
            with self._state_lock:
                self.requests_served += 1
                done = self.completed
            log.info("request %d answered (batch %d) in %.1f ms", self.requests_served, count, 1000 * (time.monotonic() - started))
            future.set_result(None)
            if done:
                log.info("answered all %d requests", self.num_requests)
                if not self.wait_after_complete:
                    self._drain_and_finish()

    def _drain_and_finish(self):
        with self._state_lock:
            self._accepting = False
        while not self._jobs.empty():
            job = self._jobs.get_nowait()
            if job is not None:
                job[2].set_exception(_Refused(HTTPStatus.GONE, "this model has answered all its requests"))
        self.finished.set()


class _Refused(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _handler_for(endpoint: ServingEndpoint):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # requests are logged by the worker, with timings
            pass

        def do_GET(self):
            if self.path == "/healthz":
                ready = endpoint.ready and not endpoint.finished.is_set()
                self._reply(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, {"ready": ready})
            elif self.path == "/status":
                self._reply(HTTPStatus.OK, endpoint.status())
            else:
                self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})

        def do_POST(self):
            if self.path != "/v1/predict":
                return self._reply(HTTPStatus.NOT_FOUND, {"error": f"no such path {self.path}"})
            try:
                key, count = self._parse_request()
                future = endpoint.submit(key, count)
                outcome = future.result()
            except _Refused as refused:
                return self._reply(refused.status, {"error": str(refused)})
            except RequestError as error:
                return self._reply(HTTPStatus.BAD_REQUEST, {"error": str(error)})
            except Exception as error:  # noqa: BLE001
                return self._reply(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(error).__name__}: {error}"})
            if isinstance(outcome, RequestError):
                return self._reply(HTTPStatus.BAD_REQUEST, {"error": str(outcome)})
            self._reply(HTTPStatus.OK, {"ok": True})

        def _parse_request(self):
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                raise RequestError(f"request body must be 1 to {MAX_BODY} bytes of JSON")
            try:
                body = json.loads(self.rfile.read(length))
                return int(body["key"]), body["count"]
            except (ValueError, KeyError, TypeError):
                raise RequestError('request body must be JSON {"key": "<integer>", "count": <integer>}') from None

        def _reply(self, status, body):
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
