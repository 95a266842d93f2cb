"""The prediction client: shares its query itself and reconstructs the answer itself.

It speaks HTTPS only, never TensorFlow gRPC: it stages one additive share of the encoded query on
each share holder's ingress (one share uniformly random, from the OS's CSPRNG), asks serving to run
the request, and collects one answer share from each holder with a token that holder alone was
given. The plaintext query and answer exist only in this process; serving learns a request id and
a batch size. Each server is verified as its party (server0, server1, serve) under the model's CA.
"""
import http.client
import json
import logging
import secrets
import ssl
import threading
import time
import urllib.parse
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


class AccessError(ValueError):
    """The access file is unusable."""


def load_access(access) -> dict:
    """The access file's content ({"serving", "server0", "server1": https URL, "ca": PEM}), checked."""
    if isinstance(access, (str, Path)):
        path = Path(access)
        try:
            access = json.loads(path.read_text())
        except OSError as error:
            raise AccessError(f"cannot read access file {path}: {error.strerror}") from None
        except ValueError as error:
            raise AccessError(f"access file {path} is not JSON: {error}") from None
    missing = [key for key in contract.ACCESS_KEYS if not isinstance(access.get(key), str)]
    if missing:
        raise AccessError(f"access file lacks {', '.join(missing)}; expected keys {', '.join(contract.ACCESS_KEYS)}")
    for key in ("serving",) + contract.SHARE_HOLDERS:
        if urllib.parse.urlsplit(access[key]).scheme != "https":
            raise AccessError(f"access file: {key} must be an https:// URL (shares never travel in the clear), got {access[key]!r}")
    return access


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
        while True:
            connection, reused = self._connection()
            try:
                connection.request(method, self.prefix + path, body=body, headers=headers or {})
                response = connection.getresponse()
                data = response.read()
                break
            except ssl.SSLCertVerificationError as error:
                self._forget(connection)
                raise ServingError(f"{self.party} at {self.url} is not the model's {self.party}: {error.verify_message}") from None
            except _CLOSED_BY_SERVER as error:
                self._forget(connection)
                # The server closed an idle kept-alive connection before reading this request: one fresh try.
                if not reused:
                    raise ServingError(f"{self.party} at {self.url} is unreachable: {error}") from None
            except (OSError, http.client.HTTPException) as error:
                self._forget(connection)
                raise ServingError(f"{self.party} at {self.url} is unreachable: {error}") from None
        if response.status not in ok:
            raise ServingError(f"{self.party} at {self.url} refused {method} {path} ({response.status}): {_error_text(data)}")
        return response.status, response.headers, data

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


class PrivateClient:
    def __init__(self, access, timeout: float = 60.0):
        access = load_access(access)
        context = ssl.create_default_context(cadata=access["ca"])
        self.serving = _Party(SERVING, access["serving"], context, timeout)
        self.holders = [_Party(player, access[player], context, timeout) for player in contract.SHARE_HOLDERS]
        self.last_phases_ms = dict.fromkeys(PHASES, 0.0)  # the last predict's time, by phase
        self.refresh_metadata()

    def refresh_metadata(self) -> None:
        """The public facts of the shared model, from server0's ingress (a re-share changes them)."""
        _, _, data = self.holders[0].request("GET", "/v2/model")
        metadata = json.loads(data)
        self.share_id = metadata["shareId"]
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
        request_id = secrets.token_hex(16)
        tokens = [secrets.token_urlsafe(32) for _ in self.holders]
        staged = []
        clock = _PhaseClock(self.last_phases_ms)
        try:
            for holder, token, share in zip(self.holders, tokens, self._share(batch)):
                holder.request("PUT", f"/v2/requests/{request_id}/input", body=share.astype("<i8").tobytes(),
                               headers=_auth(token, {"Content-Type": "application/octet-stream", "X-Batch-Size": str(len(batch))}))
                staged.append((holder, token))
            clock.lap("stage")
            body = json.dumps({"id": request_id, "count": len(batch), "shareId": self.share_id}).encode()
            self.serving.request("POST", "/v1/predict", body=body, headers={"Content-Type": "application/json"})
            clock.lap("run")
            parts = [self._collect(holder, token, request_id) for holder, token in staged]
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
    def _collect(holder, token, request_id):
        _, headers, data = holder.request("GET", f"/v2/requests/{request_id}/output", headers=_auth(token))
        shape = tuple(int(d) for d in headers.get("X-Shape", "").split(",") if d)
        return np.frombuffer(data, dtype="<i8").reshape(shape)

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


def _auth(token, headers=None):
    return {**(headers or {}), "Authorization": f"Bearer {token}"}


def _error_text(data: bytes) -> str:
    try:
        return json.loads(data)["error"]
    except (ValueError, KeyError, TypeError):
        return data[:200].decode(errors="replace") or "(no reason given)"
