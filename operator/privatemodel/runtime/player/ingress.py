"""A share holder's ingress: the only way clients reach a player. HTTPS, nothing else.

    GET    /v2/health/live, /v2/health/ready      (Open Inference Protocol names)
    GET    /v2/model                              the shared model's public facts (shapes, encoding)
    PUT    /v2/requests/ID/input                  stage this holder's share of a query
    GET    /v2/requests/ID/output                 this holder's share of the answer, once computed
    DELETE /v2/requests/ID                        drop a request

ID is 32 hex digits the client chose. Every call on a request carries `Authorization: Bearer
TOKEN`, a secret the client made for this holder alone: only that client reads the answer share
(server0 and server1 get different tokens, so neither can collect the other's share).

A staged share is a file in the player's requests/ directory, where serving's graph reads it and
writes the answer share beside it. Entries expire after a deadline and their number and bytes are
capped, so abandoned requests cannot fill the player.
"""
import hashlib
import hmac
import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import numpy as np

from privatemodel import contract
from privatemodel.runtime.mpc.https import BadRequest, HTTPSServer, JSONHandler, Refused
from privatemodel.runtime.player import storage

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"[0-9a-f]{32}")
TOKEN = re.compile(r"[0-9A-Za-z_-]{32,128}")
EXPIRY_SECONDS = 120.0
MAX_ENTRIES = 512
MAX_STAGED_BYTES = 256 * 2**20
BATCH_HEADER = "X-Batch-Size"


@dataclass
class _Entry:
    token_digest: bytes
    count: int
    size: int
    created: float


class StagingArea:
    """Staged requests of one holder: files under `directory`, bookkeeping in memory."""

    def __init__(self, directory, expiry=EXPIRY_SECONDS, max_entries=MAX_ENTRIES, max_bytes=MAX_STAGED_BYTES):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        # Nothing staged before a restart can be answered: its client is gone or will retry.
        for stale in self.directory.iterdir():
            stale.unlink()
        self.expiry = expiry
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def stage(self, request_id: str, token: str, data: bytes, count: int) -> None:
        with self._lock:
            self._expire_locked()
            if request_id in self._entries:
                raise Refused(HTTPStatus.CONFLICT, f"request {request_id} is already staged")
            if len(self._entries) >= self.max_entries or self.staged_bytes + len(data) > self.max_bytes:
                raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "staging is full; retry shortly")
            self._entries[request_id] = _Entry(_digest(token), count, len(data), time.monotonic())
        partial = self.directory / f".{request_id}.partial"
        partial.write_bytes(data)
        # Renamed into place: serving never reads half a share.
        os.replace(partial, self.input_path(request_id))

    def answer(self, request_id: str, token: str) -> np.ndarray:
        """The answer share, then forget the request; Refused if unknown, not allowed or not ready."""
        self._authorize(request_id, token)
        path = self.directory / f"{request_id}.out"
        try:
            share = storage.parse_tensor_file(path)
        except (FileNotFoundError, ValueError):
            raise Refused(HTTPStatus.NOT_FOUND, f"request {request_id} has no answer yet") from None
        self.drop(request_id, token)
        return share

    def drop(self, request_id: str, token: str) -> None:
        self._authorize(request_id, token)
        with self._lock:
            self._remove_locked(request_id)

    def input_path(self, request_id: str) -> Path:
        return self.directory / f"{request_id}.in"

    @property
    def staged_bytes(self) -> int:
        return sum(entry.size for entry in self._entries.values())

    def sweep(self) -> int:
        with self._lock:
            return self._expire_locked()

    def _authorize(self, request_id, token):
        with self._lock:
            entry = self._entries.get(request_id)
        if entry is None:
            raise Refused(HTTPStatus.NOT_FOUND, f"request {request_id} is not staged here (never, expired or already answered)")
        if not hmac.compare_digest(entry.token_digest, _digest(token)):
            raise Refused(HTTPStatus.FORBIDDEN, f"wrong token for request {request_id}")

    def _expire_locked(self) -> int:
        deadline = time.monotonic() - self.expiry
        expired = [request_id for request_id, entry in self._entries.items() if entry.created < deadline]
        for request_id in expired:
            self._remove_locked(request_id)
        if expired:
            log.info("expired %d abandoned request(s)", len(expired))
        return len(expired)

    def _remove_locked(self, request_id):
        self._entries.pop(request_id, None)
        for suffix in (".in", ".out"):
            (self.directory / f"{request_id}{suffix}").unlink(missing_ok=True)


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


class Ingress:
    def __init__(self, player: str, state_dir, tls_dir, port: int, host: str = "0.0.0.0", max_batch: int = contract.DEFAULT_MAX_BATCH):
        self.player = player
        self.state_dir = Path(state_dir)
        self.max_batch = max_batch
        self.staging = StagingArea(self.state_dir / storage.REQUESTS_DIR)
        self.http = HTTPSServer((host, port), _handler_for(self), tls_dir)
        self.port = self.http.server_address[1]
        self._stop = threading.Event()

    def start(self) -> "Ingress":
        threading.Thread(target=self.http.serve_forever, name="ingress", daemon=True).start()
        threading.Thread(target=self._sweep, name="ingress-expiry", daemon=True).start()
        log.info("ingress of %s listening on port %d (HTTPS)", self.player, self.port)
        return self

    def stop(self) -> None:
        self._stop.set()
        self.http.shutdown()

    def model(self) -> dict:
        manifest = storage.read_local_manifest(self.state_dir)
        if manifest is None:
            raise Refused(HTTPStatus.SERVICE_UNAVAILABLE, "no model is shared onto this player yet")
        return manifest

    def metadata(self) -> dict:
        """What any client may know: public model facts, never a share."""
        manifest = self.model()
        model = manifest["model"]
        return {
            "player": self.player,
            "shareId": manifest["share_id"],
            "inputShape": model["input_shape"],
            "outputShape": model["output_shape"],
            "outputActivation": model.get("output_activation"),
            "encoding": manifest["encoding"],
            "maxBatch": self.max_batch,
        }

    def share_bytes(self, count: int) -> int:
        """The size of a share of `count` inputs: int64 values, little-endian, row-major."""
        if not 1 <= count <= self.max_batch:
            raise BadRequest(f"{BATCH_HEADER} must be from 1 to {self.max_batch}, got {count}")
        return count * int(np.prod(self.model()["model"]["input_shape"])) * 8

    def stage(self, request_id, token, data: bytes, count: int) -> None:
        expected = self.share_bytes(count)
        if len(data) != expected:
            input_shape = tuple(self.model()["model"]["input_shape"])
            raise BadRequest(f"a share of {count} input(s) of shape {input_shape} is {expected} bytes of int64, got {len(data)}")
        self.staging.stage(request_id, token, data, count)

    def _sweep(self):
        while not self._stop.wait(5.0):
            self.staging.sweep()


def _handler_for(ingress: Ingress):
    class Handler(JSONHandler):
        def do_GET(self):
            self._route("GET")

        def do_PUT(self):
            self._route("PUT")

        def do_DELETE(self):
            self._route("DELETE")

        def do_POST(self):
            self.reply_error(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.path} does not take POST")

        def _route(self, method):
            try:
                self._serve(method)
            except BadRequest as error:
                self.reply_error(HTTPStatus.BAD_REQUEST, str(error))
            except Refused as refused:
                self.reply_error(refused.status, str(refused))

        def _serve(self, method):
            path = self.path
            if method == "GET" and path in ("/v2/health/live", "/v2/health/ready"):
                return self.reply_json(HTTPStatus.OK, {"live": True, "ready": True})
            if method == "GET" and path == "/v2/model":
                return self.reply_json(HTTPStatus.OK, ingress.metadata())
            parts = path.split("/")
            if len(parts) < 4 or parts[1:3] != ["v2", "requests"]:
                raise Refused(HTTPStatus.NOT_FOUND, f"no such path {path}")
            request_id = parts[3]
            if not REQUEST_ID.fullmatch(request_id):
                raise BadRequest("a request id is 32 lowercase hex digits")
            token = self._token()
            action = "/".join(parts[4:])
            if method == "PUT" and action == "input":
                count = self._batch_size()
                ingress.stage(request_id, token, self.read_body(ingress.share_bytes(count)), count)
                return self.reply_json(HTTPStatus.CREATED, {"staged": request_id})
            if method == "GET" and action == "output":
                share = ingress.staging.answer(request_id, token)
                return self.reply_bytes(HTTPStatus.OK, share.astype("<i8").tobytes(),
                                        headers=[("X-Shape", ",".join(str(d) for d in share.shape))])
            if method == "DELETE" and action == "":
                ingress.staging.drop(request_id, token)
                return self.reply_json(HTTPStatus.OK, {"dropped": request_id})
            raise Refused(HTTPStatus.NOT_FOUND, f"no such path {path} for {method}")

        def _token(self):
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            if scheme != "Bearer" or not TOKEN.fullmatch(token):
                raise Refused(HTTPStatus.UNAUTHORIZED, "requests need `Authorization: Bearer TOKEN` (32-128 URL-safe characters)")
            return token

        def _batch_size(self):
            text = self.headers.get(BATCH_HEADER, "")
            if not text.isdigit():
                raise BadRequest(f"header {BATCH_HEADER} must give the number of inputs in the share")
            return int(text)

    return Handler
