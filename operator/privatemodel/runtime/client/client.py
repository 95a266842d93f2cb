"""The prediction client: shares its query itself and reconstructs the answer itself.

It speaks HTTPS only, never TensorFlow gRPC: it stages one additive share of the encoded query on
each share holder's ingress (one share uniformly random, from the OS's CSPRNG), asks serving to run
the request, and collects one answer share from each holder with a token that holder alone was
given. The plaintext query and answer exist only in this process; serving learns a request id and
a batch size. Each server is verified as its party (server0, server1, serve) under the model's CA.

A model served by several player triples (the access file's "triples") is a set of independent
deployments, each with its own CA and its own sharing of the weights: the client sends each request
to one triple, in turn from a random start, and a request whose triple cannot be reached or answers
503 is sent once more, freshly shared under a new id, to the next triple.
"""
import http.client
import itertools
import json
import logging
import secrets
import ssl
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from privatemodel import contract
from privatemodel.pki import PartyHTTPSConnection
from privatemodel.runtime.client.postprocess import apply_output_activation

log = logging.getLogger(__name__)

SERVING = "serve"  # the serving endpoint's party name, as its certificate says
_CLOSED_BY_SERVER = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine, ssl.SSLEOFError, ssl.SSLZeroReturnError)


class QueryError(ValueError):
    """The query cannot be sent as it is; nothing was sent."""


class ServingError(RuntimeError):
    """A server refused or failed the request, or cannot be reached."""

    def __init__(self, message: str, status: int | None = None, unreachable: bool = False):
        super().__init__(message)
        self.status = status  # the HTTP status of a refusal
        self.unreachable = unreachable

    @property
    def triple_down(self) -> bool:
        """The triple that was asked cannot serve now (another one may): no answer, or 503."""
        return self.unreachable or self.status == 503


class AccessError(ValueError):
    """The access file is unusable."""


def load_access(access) -> dict:
    """The access file's content ({"serving", "server0", "server1": https URL, "ca": PEM}, and
    optionally "triples": a list of such objects), checked."""
    if isinstance(access, (str, Path)):
        path = Path(access)
        try:
            access = json.loads(path.read_text())
        except OSError as error:
            raise AccessError(f"cannot read access file {path}: {error.strerror}") from None
        except ValueError as error:
            raise AccessError(f"access file {path} is not JSON: {error}") from None
    _check_triple(access, "access file")
    triples = access.get(contract.ACCESS_TRIPLES)
    if triples is not None:
        if not isinstance(triples, list) or not triples:
            raise AccessError(f"access file: {contract.ACCESS_TRIPLES} must be a non-empty list, got {triples!r}")
        for index, triple in enumerate(triples):
            if not isinstance(triple, dict):
                raise AccessError(f"access file: {contract.ACCESS_TRIPLES}[{index}] must be an object")
            _check_triple(triple, f"access file: {contract.ACCESS_TRIPLES}[{index}]")
        # The client reads the list; an edit made to the top level alone would go unseen.
        edited = [key for key in contract.ACCESS_KEYS if access[key] != triples[0][key]]
        if edited:
            raise AccessError(
                f"access file: {', '.join(edited)} at the top level differ from {contract.ACCESS_TRIPLES}[0], and the "
                f"client uses {contract.ACCESS_TRIPLES}: the top level is a copy of triple 0 for older clients; make the "
                f"same change in {contract.ACCESS_TRIPLES}[0] (and in every triple's entry)")
    return access


def access_triples(access: dict) -> list[dict]:
    """Every triple's access: the "triples" list, or the top level alone (a single triple, or an
    access file older than scale-out)."""
    return access.get(contract.ACCESS_TRIPLES) or [{key: access[key] for key in contract.ACCESS_KEYS}]


def _check_triple(access: dict, where: str) -> None:
    missing = [key for key in contract.ACCESS_KEYS if not isinstance(access.get(key), str)]
    if missing:
        raise AccessError(f"{where} lacks {', '.join(missing)}; expected keys {', '.join(contract.ACCESS_KEYS)}")
    for key in ("serving",) + contract.SHARE_HOLDERS:
        if urllib.parse.urlsplit(access[key]).scheme != "https":
            raise AccessError(f"{where}: {key} must be an https:// URL (shares never travel in the clear), got {access[key]!r}")


class _Party:
    """Keep-alive HTTPS to one party, verified as that party whatever host its URL names."""

    def __init__(self, party: str, url: str, context: ssl.SSLContext, timeout: float):
        self.party = party
        self.url = url.rstrip("/")
        parts = urllib.parse.urlsplit(self.url)
        self.host, self.port, self.prefix = parts.hostname, parts.port or 443, parts.path
        self.context = context
        self.timeout = timeout
        self._local = threading.local()

    def request(self, method, path, body=None, headers=None, ok=(200, 201)):
        """(status, headers, body bytes); ServingError unless the status is one of `ok`."""
        return self.finish(self.send(method, path, body, headers), ok)

    def send(self, method, path, body=None, headers=None) -> "_Sent":
        """Send a request without waiting for its answer; finish() waits. The client sends to both
        holders before waiting on either, so they work at once."""
        while True:
            connection, reused = self._connection()
            try:
                connection.request(method, self.prefix + path, body=body, headers=headers or {})
                return _Sent(connection, reused, method, path, body, headers)
            except BaseException as error:
                self._failed(connection, reused, error)

    def finish(self, sent: "_Sent", ok=(200, 201)):
        """The answer to what send() sent, as request() returns it."""
        try:
            response = sent.connection.getresponse()
            data = response.read()
        except BaseException as error:
            self._failed(sent.connection, sent.reused, error)
            return self.request(sent.method, sent.path, sent.body, sent.headers, ok)
        if response.status not in ok:
            raise ServingError(f"{self.party} at {self.url} refused {sent.method} {sent.path} ({response.status}): {_error_text(data)}",
                               status=response.status)
        return response.status, response.headers, data

    def _failed(self, connection, reused, error):
        """Drop the connection and raise, unless the server only closed an idle kept-alive one
        before reading the request: then one fresh try is due (the caller's)."""
        self._forget(connection)
        if isinstance(error, ssl.SSLCertVerificationError):
            raise ServingError(f"{self.party} at {self.url} is not the model's {self.party}: {error.verify_message}") from None
        if isinstance(error, _CLOSED_BY_SERVER) and reused:
            return
        if isinstance(error, (OSError, http.client.HTTPException)):
            raise ServingError(f"{self.party} at {self.url} is unreachable: {error}", unreachable=True) from None
        raise error

    def _forget(self, connection):
        self._local.connection = None
        connection.close()

    def _connection(self):
        """(connection, whether it served an earlier request)."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            return connection, True
        connection = PartyHTTPSConnection(self.host, self.port, self.party, self.context, self.timeout)
        self._local.connection = connection
        return connection, False


@dataclass
class _Sent:
    """A request sent on a kept-alive connection, its answer not yet read."""
    connection: http.client.HTTPConnection
    reused: bool
    method: str
    path: str
    body: bytes | None
    headers: dict | None


def _exchange(calls) -> list:
    """Each (party, method, path, body, headers) sent before any answer is awaited, then every answer
    read: a (status, headers, body) or the ServingError, in order. Every answer is read before the
    caller raises, so no connection is left with one pending."""
    sent = []
    for party, method, path, body, headers in calls:
        try:
            sent.append((party, party.send(method, path, body, headers)))
        except ServingError as error:
            sent.append((party, error))
    outcomes = []
    for party, pending in sent:
        try:
            outcomes.append(pending if isinstance(pending, ServingError) else party.finish(pending))
        except ServingError as error:
            outcomes.append(error)
    return outcomes


def _raise_first_error(outcomes) -> None:
    for outcome in outcomes:
        if isinstance(outcome, ServingError):
            raise outcome


class _Triple:
    """One player triple as a client sees it: serving and the two holders' ingress, under its own CA,
    and the shares it serves (its own sharing run: share ids differ from triple to triple)."""

    def __init__(self, index: int, access: dict, timeout: float):
        context = ssl.create_default_context(cadata=access["ca"])
        self.index = index
        self.serving = _Party(SERVING, access["serving"], context, timeout)
        self.holders = [_Party(player, access[player], context, timeout) for player in contract.SHARE_HOLDERS]
        self.metadata: dict | None = None  # fetched on first use, and again after the triple failed

    def refresh_metadata(self) -> dict:
        """The public facts of the shares this triple holds, from its server0's ingress."""
        _, _, data = self.holders[0].request("GET", "/v2/model")
        self.metadata = json.loads(data)
        return self.metadata


class PrivateClient:
    def __init__(self, access, timeout: float = 60.0):
        access = load_access(access)
        self.triples = [_Triple(index, triple, timeout) for index, triple in enumerate(access_triples(access))]
        # Round robin from a random start, so that many clients spread evenly over the triples.
        self._turns = itertools.count(secrets.randbelow(len(self.triples)))
        self.last_phases_ms = dict.fromkeys(PHASES, 0.0)  # the last predict's time, by phase
        self.last_triple = None  # the triple that answered the last request
        self.refresh_metadata()

    @property
    def serving(self) -> _Party:
        """The first triple's serving (the only one in a single-triple access file)."""
        return self.triples[0].serving

    @property
    def holders(self) -> list:
        return self.triples[0].holders

    @property
    def share_id(self) -> str:
        return self.triples[0].metadata["shareId"]

    def refresh_metadata(self) -> None:
        """The public facts of the shared model (a re-share changes them), from the first triple that
        answers; the others' share ids are fetched when a request first goes to them."""
        for triple in self.triples:
            triple.metadata = None
        error = None
        for triple in self.triples:
            try:
                metadata = triple.refresh_metadata()
                break
            except ServingError as failure:
                if not failure.triple_down:
                    raise
                error = failure
        else:
            raise error
        self.input_shape = tuple(metadata["inputShape"])
        self.output_shape = tuple(metadata["outputShape"])
        self.output_activation = metadata.get("outputActivation")  # None: the logits are the answer
        self.scaling_factor = metadata["encoding"]["scaling_factor"]
        self.max_abs_value = metadata["encoding"]["max_abs_value"]
        self.max_batch = metadata["maxBatch"]

    def predict(self, x) -> np.ndarray:
        """The model's output for a batch (n, *input_shape), or for one example without the batch axis:
        logits, or probabilities when the model ends in softmax/sigmoid (applied here, after reconstruction)."""
        batch = self.check_query(x)
        started = time.monotonic()
        self.last_phases_ms = dict.fromkeys(PHASES, 0.0)
        answers = [self._predict_batch(batch[start:start + self.max_batch]) for start in range(0, len(batch), self.max_batch)]
        answer = np.concatenate(answers)
        log.info("private prediction of %d example(s) in %.1f ms (%s)", len(batch), 1000 * (time.monotonic() - started),
                 ", ".join(f"{phase} {ms:.1f} ms" for phase, ms in self.last_phases_ms.items()))
        return apply_output_activation(answer, self.output_activation)

    def check_query(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            raise QueryError(f"query dtype {x.dtype} is not numeric; expected float or integer values")
        if x.shape == self.input_shape:
            x = x[np.newaxis]
        if x.ndim == 0 or x.shape[1:] != self.input_shape or len(x) == 0:
            raise QueryError(
                f"query shape {x.shape} does not fit the model input {self.input_shape} "
                f"(or a batch of them, (n,) + {self.input_shape})"
            )
        x = x.astype(np.float64)
        if not np.isfinite(x).all():
            raise QueryError(f"query has {int((~np.isfinite(x)).sum())} NaN or infinite value(s)")
        if np.abs(x).max() >= self.max_abs_value:
            raise QueryError(f"query values must lie within ±{self.max_abs_value:g} (fixed-point range), got {np.abs(x).max():g}")
        return x

    def _predict_batch(self, batch) -> np.ndarray:
        """On the next triple; once more on the one after it if that triple is down."""
        first = next(self._turns)
        attempts = min(2, len(self.triples))
        for attempt in range(attempts):
            triple = self.triples[(first + attempt) % len(self.triples)]
            try:
                answer = self._predict_on(triple, batch)
            except ServingError as error:
                if not error.triple_down or attempt + 1 == attempts:
                    raise
                # Rebuilt, it will hold a new sharing: its metadata is fetched again before its next request.
                triple.metadata = None
                log.warning("triple %d cannot serve (%s); sending the request to the next triple", triple.index, error)
                continue
            self.last_triple = triple.index
            return answer

    def _predict_on(self, triple: _Triple, batch) -> np.ndarray:
        """One request on one triple, under a fresh id with fresh shares of the query."""
        metadata = triple.metadata or triple.refresh_metadata()
        request_id = secrets.token_hex(16)
        tokens = [secrets.token_urlsafe(32) for _ in triple.holders]
        staged = []
        clock = _PhaseClock(self.last_phases_ms)
        try:
            headers = {"Content-Type": "application/octet-stream", "X-Batch-Size": str(len(batch))}
            outcomes = _exchange([(holder, "PUT", f"/v2/requests/{request_id}/input", share.astype("<i8").tobytes(), _auth(token, headers))
                                  for holder, token, share in zip(triple.holders, tokens, self._share(batch))])
            staged = [(holder, token) for holder, token, outcome in zip(triple.holders, tokens, outcomes)
                      if not isinstance(outcome, ServingError)]
            _raise_first_error(outcomes)
            clock.lap("stage")
            body = json.dumps({"id": request_id, "count": len(batch), "shareId": metadata["shareId"]}).encode()
            triple.serving.request("POST", "/v1/predict", body=body, headers={"Content-Type": "application/json"})
            clock.lap("run")
            outcomes = _exchange([(holder, "GET", f"/v2/requests/{request_id}/output", None, _auth(token)) for holder, token in staged])
            _raise_first_error(outcomes)
            parts = [_answer_share(headers, data) for _, headers, data in outcomes]
            clock.lap("collect")
        except BaseException:
            self._drop(request_id, staged)
            raise
        with np.errstate(over="ignore"):
            logits = (parts[0] + parts[1]).astype(np.float64) / self.scaling_factor
        return logits.reshape((len(batch),) + self.output_shape)

    def _share(self, x):
        """Fixed-point encode, then split into two shares that add up to it modulo 2**64."""
        encoded = (x * self.scaling_factor).astype(np.int64)
        mask = np.frombuffer(secrets.token_bytes(encoded.size * 8), dtype=np.int64).reshape(encoded.shape)
        with np.errstate(over="ignore"):
            return mask, encoded - mask

    @staticmethod
    def _drop(request_id, staged):
        """Best effort: a failed request should not wait on the holders until it expires."""
        for holder, token in staged:
            try:
                holder.request("DELETE", f"/v2/requests/{request_id}", headers=_auth(token), ok=(200, 404))
            except ServingError:
                pass


# Where a prediction's time goes, as the client sees it: sharing the query and staging a share on
# each holder; serving's run (queueing, its checks, the MPC step); collecting the answer shares.
PHASES = ("stage", "run", "collect")


class _PhaseClock:
    def __init__(self, totals_ms: dict):
        self.totals_ms = totals_ms
        self.started = time.monotonic()

    def lap(self, phase: str) -> None:
        now = time.monotonic()
        self.totals_ms[phase] += 1000 * (now - self.started)
        self.started = now


def _answer_share(headers, data) -> np.ndarray:
    shape = tuple(int(d) for d in headers.get("X-Shape", "").split(",") if d)
    return np.frombuffer(data, dtype="<i8").reshape(shape)


def _auth(token, headers=None):
    return {**(headers or {}), "Authorization": f"Bearer {token}"}


def _error_text(data: bytes) -> str:
    try:
        return json.loads(data)["error"]
    except (ValueError, KeyError, TypeError):
        return data[:200].decode(errors="replace") or "(no reason given)"
