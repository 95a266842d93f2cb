"""The serving endpoint: HTTPS for coordination only. No share, query or answer crosses it.

GET  /healthz      200 once a client can safely connect (shares loaded, graphs warm), else 503;
                   also as /v2/health/ready (Open Inference Protocol), and /v2/health/live
GET  /status       {"ready", "requestsServed", "numRequests", "completed"}
GET  /metrics      Prometheus metrics (serving/metrics.py): counts and durations only
POST /v1/predict   {"id": "<request id>", "count": n, "shareId": "<shares the query was made for>"}:
                   the client staged its query shares under id on both holders' ingress; when this
                   returns 200 the answer shares wait there under the same id.
Requests are checked for form before they are queued, then coalesced: one worker thread takes the
oldest request and those queued behind it while their rows fit the largest batch (delaying none
by more than `batch_wait`, see batching.py) and runs them as one MPC step (TensorFlow
graphs on the players), after one check of the whole batch (staged right on both holders, for the
shares being served). A request refused by that check is told so alone; the others run.
A lost player or a re-share (the loaded shares are stale) stops serving: the clients waiting get
503 with the reason, and serve exits.
"""
import contextlib
import json
import logging
import threading
import time
from concurrent.futures import Future, InvalidStateError
from http import HTTPStatus

from privatemodel.runtime.mpc.https import BadRequest, HTTPSServer, JSONHandler
from privatemodel.runtime.serving.batching import DEFAULT_BATCH_WAIT_SECONDS, Job, RequestQueue
from privatemodel.runtime.serving.metrics import CONTENT_TYPE, ServingMetrics
from privatemodel.runtime.serving.server import RequestError, SharesReplaced

log = logging.getLogger(__name__)

MAX_BODY = 4096
STOP_GRACE_SECONDS = 20.0
# When serving fails, the clients still waiting are told why before the process exits.
REPLY_GRACE_SECONDS = 5.0
# A step that runs longer has lost a player or hangs: /healthz then says so, and it gets restarted.
STEP_DEADLINE_SECONDS = 120.0
# No request for this long: serving compiles its next idle warm-up size (`serve --warm-up-idle`).
IDLE_SECONDS_BEFORE_WARM_UP = 1.0


class ServingEndpoint:
    def __init__(self, server, port: int, tls_dir, host: str = "0.0.0.0", num_requests=None, wait_after_complete=False,
                 batch_wait: float = DEFAULT_BATCH_WAIT_SECONDS, idle_warm_up=()):
        self.server = server
        self.num_requests = num_requests
        self.batch_wait = batch_wait
        self._idle_warm_up = list(idle_warm_up)  # batch sizes still to compile while idle
        self.wait_after_complete = wait_after_complete
        self.ready = False
        self.requests_served = 0
        self.finished = threading.Event()  # set when serving should end (SIGTERM, N answered, player lost)
        self.failure = None  # why serving had to stop, if it was not asked to
        self._jobs = RequestQueue()
        self._in_flight = []  # the jobs of the batch the worker runs
        self._step_started = None  # monotonic time the batch in flight started
        self._open_replies = 0  # clients waiting for their answer
        self._replies = threading.Condition()
        self._accepting = True
        self._state_lock = threading.Lock()
        self.metrics = ServingMetrics(queue_depth=lambda: len(self._jobs))
        self.http = HTTPSServer((host, port), _handler_for(self), tls_dir)
        self.port = self.http.server_address[1]

    @property
    def stuck(self) -> bool:
        started = self._step_started
        return started is not None and time.monotonic() - started > STEP_DEADLINE_SECONDS

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
        """Answer requests until finished; the batch in flight completes unless a player was lost.

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
            self._jobs.close()
            # The batch in flight may finish; a step stuck on a player must not hold the exit.
            worker.join(STOP_GRACE_SECONDS)
            if worker.is_alive():
                self.failure = TimeoutError(f"the requests in flight did not finish within {STOP_GRACE_SECONDS:.0f} s of stopping")
        if self.failure is not None:
            self._release_waiting(self.failure)
            with self._replies:
                self._replies.wait_for(lambda: self._open_replies == 0, REPLY_GRACE_SECONDS)
        self.http.shutdown()

    def _watch(self, check_players, interval):
        while not self.finished.wait(interval):
            try:
                check_players()
            except ConnectionError as error:
                self._fail(error)

    def _fail(self, error):
        """Serving cannot go on (a player lost, the shares replaced): it stops at once."""
        log.error("%s; serving stops", error)
        self.failure = error
        self.ready = False
        self.finished.set()

    def _release_waiting(self, error):
        """The requests in flight and the queued ones will get no answer: their clients are told why."""
        with self._state_lock:
            waiting = self._in_flight + self._jobs.drain()
        for job in waiting:
            _settle(job.future, error=error)

    @contextlib.contextmanager
    def replying(self):
        """Held by each client waiting for its answer, so a failing serve tells it before exiting."""
        with self._replies:
            self._open_replies += 1
        try:
            yield
        finally:
            with self._replies:
                self._open_replies -= 1
                self._replies.notify_all()

    def submit(self, request_id, count, share_id=None) -> Future:
        """Checked for form, then queued in arrival order; the future holds None or the RequestError."""
        with self._state_lock:
            self._check_accepting_locked()
            if not self.ready:
                raise _Refused(HTTPStatus.SERVICE_UNAVAILABLE, "not ready yet")
        self.server.validate(request_id, count, share_id)
        job = Job(request_id, count)
        with self._state_lock:
            # Checked again with the put: the N-th answer may have come meanwhile, and no job may
            # be queued after the worker refused the ones left.
            self._check_accepting_locked()
            self._jobs.put(job)
        return job.future

    def _check_accepting_locked(self):
        if not self._accepting or self.completed:
            raise _Refused(HTTPStatus.GONE, "this model has answered all its requests" if self.completed else "shutting down")

    def _work(self):
        while True:
            idle = IDLE_SECONDS_BEFORE_WARM_UP if self._idle_warm_up else None
            batch = self._jobs.take(self.server.max_batch, self._requests_left(), self.batch_wait, idle)
            if batch == []:
                self._warm_up_while_idle(self._idle_warm_up.pop(0))
                continue
            if batch is None or not self._run(batch):
                break
            if self.completed:
                self._complete()
                break

    def _warm_up_while_idle(self, size):
        """Compile one more batch size while no request waits, so the first burst of concurrent
        clients does not wait for it. A request that comes meanwhile waits for this one step."""
        if self.server.is_warm(size):
            return
        self._step_started = time.monotonic()
        try:
            self.server.warm_up([size])
        except Exception:  # noqa: BLE001 - a lost player or new shares: the next request's step finds and reports it
            log.warning("compiling batch size %d while idle failed; sizes left compile at first use", size, exc_info=True)
            self._idle_warm_up.clear()
        finally:
            self._step_started = None

    def _requests_left(self) -> int:
        """No batch may take more requests than serving has left to answer (each has a row at least)."""
        if self.num_requests is None:
            return self.server.max_batch
        return self.num_requests - self.requests_served

    def _run(self, batch) -> bool:
        """One MPC step for the batch; each client is told its own outcome. False: serving cannot go on."""
        with self._state_lock:
            self._in_flight = batch
        started = self._step_started = time.monotonic()
        self.metrics.observe_batch(batch, started)
        try:
            refused = self.server.run_batch([(job.request_id, job.count) for job in batch])
            self.metrics.step_seconds.observe(time.monotonic() - started)
        except (ConnectionError, SharesReplaced) as error:  # `run` tells the queued clients
            for job in batch:
                _settle(job.future, error=error)
            self._fail(error)
            return False
        except Exception as error:  # noqa: BLE001 - reported to the clients and logged; serving goes on
            log.exception("batch of %d request(s) failed", len(batch))
            for job in batch:
                _settle(job.future, error=error)
            return True
        finally:
            self._step_started = None
            with self._state_lock:
                self._in_flight = []
        for request_id, error in refused.items():
            log.warning("request rejected: %s", error)
        answered = [job for job in batch if job.request_id not in refused]
        with self._state_lock:
            self.requests_served += len(answered)
        log.info("batch of %d request(s), %d row(s): %d answered in %.1f ms (%d so far)", len(batch), sum(job.count for job in batch),
                 len(answered), 1000 * (time.monotonic() - started), self.requests_served)
        for job in batch:
            _settle(job.future, result=refused.get(job.request_id))
        return True

    def _complete(self):
        """All N answered: the requests still queued are refused; serving ends unless told to wait."""
        log.info("answered all %d requests", self.num_requests)
        with self._state_lock:
            left = self._jobs.drain()
        for job in left:
            _settle(job.future, error=_Refused(HTTPStatus.GONE, "this model has answered all its requests"))
        if not self.wait_after_complete:
            with self._state_lock:
                self._accepting = False
            self.finished.set()


def _settle(future, result=None, error=None):
    """Answer a waiting client, unless a failing serve already told it why there is no answer."""
    with contextlib.suppress(InvalidStateError):
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)


class _Refused(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _handler_for(endpoint: ServingEndpoint):
    class Handler(JSONHandler):
        def do_GET(self):
            if self.path in ("/healthz", "/v2/health/ready"):
                ready = endpoint.ready and not endpoint.finished.is_set() and not endpoint.stuck
                self.reply_json(HTTPStatus.OK if ready else HTTPStatus.SERVICE_UNAVAILABLE, {"ready": ready})
            elif self.path == "/v2/health/live":
                live = not endpoint.stuck
                self.reply_json(HTTPStatus.OK if live else HTTPStatus.SERVICE_UNAVAILABLE, {"live": live})
            elif self.path == "/status":
                self.reply_json(HTTPStatus.OK, endpoint.status())
            elif self.path == "/metrics":
                self.reply_bytes(HTTPStatus.OK, endpoint.metrics.exposition(), content_type=CONTENT_TYPE)
            else:
                self.reply_error(HTTPStatus.NOT_FOUND, f"no such path {self.path}")

        def do_POST(self):
            if self.path != "/v1/predict":
                return self.reply_error(HTTPStatus.NOT_FOUND, f"no such path {self.path}")
            started = time.monotonic()
            status = self._predict()
            endpoint.metrics.observe_request(status, time.monotonic() - started)

        def _predict(self) -> int:
            """Serve one prediction request; the HTTP status it was answered with."""
            try:
                request_id, count, share_id = self._parse_request()
                with endpoint.replying():
                    outcome = endpoint.submit(request_id, count, share_id).result()
            except _Refused as refused:
                status, message = refused.status, str(refused)
            except (RequestError, BadRequest) as error:
                status, message = HTTPStatus.BAD_REQUEST, str(error)
            except (ConnectionError, TimeoutError, SharesReplaced) as error:  # serving cannot go on
                status, message = HTTPStatus.SERVICE_UNAVAILABLE, f"{error}; serving stops"
            except Exception as error:  # noqa: BLE001
                log.exception("request failed")
                status, message = HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(error).__name__}: {error}"
            else:
                if not isinstance(outcome, RequestError):
                    self.reply_json(HTTPStatus.OK, {"ok": True})
                    return HTTPStatus.OK
                status, message = HTTPStatus.BAD_REQUEST, str(outcome)
            self.reply_error(status, message)
            return status

        def _parse_request(self):
            usage = 'request body must be JSON {"id": "<32 hex digits>", "count": <integer>, "shareId": "<string>"}'
            data = self.read_body(MAX_BODY)
            try:
                body = json.loads(data, parse_constant=_refuse_constant)
            except (ValueError, RecursionError):
                raise BadRequest(usage) from None
            if not isinstance(body, dict) or "id" not in body or "count" not in body:
                raise BadRequest(usage)
            return body["id"], body["count"], body.get("shareId")

    return Handler


def _refuse_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")
