"""The prediction client: shares its query itself and reconstructs the answer itself.

The plaintext query and answer exist only in this process. Server0 and server1 each receive one
additive share of the encoded query (one of them uniformly random, from the OS's CSPRNG) and send
back one share of the answer; the serving endpoint only learns a request key and a batch size.
"""
import json
import logging
import secrets
import time
import urllib.error
import urllib.request

import numpy as np

from privatemodel.runtime.client.postprocess import apply_output_activation
from privatemodel.runtime.player import staging, storage as shares
from privatemodel.runtime.mpc.session import connect, device_name

log = logging.getLogger(__name__)


class QueryError(ValueError):
    """The query cannot be sent as it is; nothing was sent."""


class ServingError(RuntimeError):
    """The serving endpoint refused or failed the request."""


class PrivateClient:
    def __init__(self, hostmap: dict, server_url: str, timeout: float = 60.0):
        self.hostmap = hostmap
        self.server_url = server_url.rstrip("/")
        self.timeout = timeout
        connect(hostmap, timeout=min(timeout, 10.0))
        manifest = shares.read_consistent_manifest(hostmap)
        self.input_shape = tuple(manifest["model"]["input_shape"])
        self.output_shape = tuple(manifest["model"]["output_shape"])
        self.output_activation = manifest["model"].get("output_activation")
        self.scaling_factor = manifest["encoding"]["scaling_factor"]
        self.max_abs_value = manifest["encoding"]["max_abs_value"]

    def predict(self, x) -> np.ndarray:
        """The model's output for a batch (n, *input_shape), or for one example without the batch axis:
        logits, or probabilities when the model ends in softmax/sigmoid (applied here, after reconstruction)."""
        batch = self.check_query(x)
        key = staging.new_key()
        started = time.monotonic()
        share0, share1 = self._share(batch)
        self._stage(key, share0, share1)
        self._ask_server(key, len(batch))
        answer = self._collect(key)
        log.info("private prediction of %d example(s) in %.1f ms", len(batch), 1000 * (time.monotonic() - started))
        return apply_output_activation(answer.reshape((len(batch),) + self.output_shape), self.output_activation)

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

    def _share(self, x):
        """Fixed-point encode, then split into two shares that add up to it modulo 2**64."""
        encoded = (x * self.scaling_factor).astype(np.int64)
        mask = np.frombuffer(secrets.token_bytes(encoded.size * 8), dtype=np.int64).reshape(encoded.shape)
        with np.errstate(over="ignore"):
            return mask, encoded - mask

    def _stage(self, key, share0, share1):
        import tensorflow as tf

        for player, share in zip(shares.SHARE_HOLDERS, (share0, share1)):
            with tf.device(device_name(player)):
                staging.stage(staging.INPUTS, tf.constant(key, tf.int64), tf.constant(share))

    def _ask_server(self, key, count):
        body = json.dumps({"key": str(key), "count": count}).encode()
        request = urllib.request.Request(
            f"{self.server_url}/v1/predict", data=body, headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as error:
            reason = _error_text(error)
            raise ServingError(f"serving endpoint {self.server_url} refused the request ({error.code}): {reason}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise ServingError(f"serving endpoint {self.server_url} is unreachable: {reason}") from None

    def _collect(self, key):
        import tensorflow as tf

        parts = []
        for player in shares.SHARE_HOLDERS:
            with tf.device(device_name(player)):
                parts.append(staging.unstage(staging.OUTPUTS, tf.constant(key, tf.int64)).numpy())
        with np.errstate(over="ignore"):
            return (parts[0] + parts[1]) / self.scaling_factor


def _error_text(error):
    try:
        return json.loads(error.read())["error"]
    except (ValueError, KeyError, OSError):
        return error.reason
