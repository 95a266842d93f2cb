"""Private predictions on the shares already on the players; no .h5 needed.

One tf.function per batch size bucket: read the request's query shares where each holder's ingress
staged them, run the SecureNN model, write the answer shares beside them for the ingress to hand
to the client. Nothing is revealed anywhere: the client alone adds the two answer shares.
"""
import copy
import logging
import re
import threading
import time

import numpy as np

from privatemodel.contract import DEFAULT_MAX_BATCH
from privatemodel.runtime.mpc import hostmap as hostmaps
from privatemodel.runtime.mpc.session import connect_securenn, device_name
from privatemodel.runtime.owner.model import ModelSummary
from privatemodel.runtime.player import storage as shares

log = logging.getLogger(__name__)

REQUEST_ID = re.compile(r"[0-9a-f]{32}")
# Not a client's id (those are hex): the warm-up's files are reused at every start, never piled up.
WARM_UP_ID = "warm-up"


class RequestError(ValueError):
    """The request is wrong; the server is fine and serves the next one."""


class SharesReplaced(RuntimeError):
    """The model was shared again: the shares this serve loaded are stale, it must not answer."""


def batch_buckets(max_batch: int) -> list[int]:
    """Batch sizes that get a compiled graph: powers of two, and the maximum."""
    buckets, size = [], 1
    while size < max_batch:
        buckets.append(size)
        size *= 2
    return buckets + [max_batch]


class PrivateModelServer:
    def __init__(self, hostmap, max_batch: int = DEFAULT_MAX_BATCH, tls_dir=None, work_dir=None):
        self.hostmap = hostmap
        self.tls_dir = tls_dir
        self.work_dir = work_dir
        self.buckets = batch_buckets(max_batch)
        self.max_batch = max_batch
        self._steps = {}
        self._steps_lock = threading.Lock()

    def load(self) -> None:
        """Connect, and read the shares into the players' memory; fails if there are none."""
        started = time.monotonic()
        self.protocol = connect_securenn(self.hostmap, "serve", self.tls_dir, self.work_dir)
        self.manifest = shares.read_consistent_manifest(self.hostmap)
        self.summary = ModelSummary.from_dict(self.manifest["model"])
        share_id = self.manifest["share_id"]
        shares.check_distinct_shares(self.hostmap, share_id)
        holders = {}
        for player in shares.SHARE_HOLDERS:
            import tensorflow as tf

            with tf.device(device_name(player)):
                flat = shares.read_weights(player, share_id)
                holders[player] = shares.split_shares(flat, self.summary.weight_shapes)
        self._weights = [self._private(s0, s1) for s0, s1 in zip(holders["server0"], holders["server1"])]
        log.info("loaded shares %s (%d weights) in %.1f s", share_id, len(self._weights), time.monotonic() - started)

    def warm_up(self, batch_sizes=(1,)) -> None:
        """Trace and run each graph once, so the first real request is not the slow one."""
        import tensorflow as tf

        for count in batch_sizes:
            started = time.monotonic()
            zeros = np.zeros((count,) + self.summary.input_shape, dtype="<i8").tobytes()
            for player in shares.SHARE_HOLDERS:
                with tf.device(device_name(player)):
                    tf.io.write_file(f"{shares.REQUESTS_DIR}/{WARM_UP_ID}.in", zeros)
            self.predict(WARM_UP_ID, count)
            for player in shares.SHARE_HOLDERS:
                with tf.device(device_name(player)):
                    for suffix in (".in", ".out"):
                        tf.io.write_file(f"{shares.REQUESTS_DIR}/{WARM_UP_ID}{suffix}", b"")
            log.info("warmed up batch size %d in %.1f s", count, time.monotonic() - started)

    def check_players(self) -> None:
        hostmaps.check_reachable(self.hostmap, timeout=2.0)

    def check_request(self, request_id, count, share_id=None) -> None:
        """Before a request is queued: well-formed, for these shares, staged on both holders."""
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= self.max_batch:
            raise RequestError(f"count must be an integer from 1 to {self.max_batch}, got {count!r}")
        if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
            raise RequestError("id must be 32 lowercase hex digits")
        if share_id is not None and share_id != self.manifest["share_id"]:
            raise RequestError(
                f"the client prepared its query for shares {share_id}, this server serves {self.manifest['share_id']}: "
                "the model was shared again; fetch the model's metadata and retry"
            )
        # The shares loaded stay in the players' memory after a re-share: never answer with them.
        current = (shares.read_manifest("server0", self.hostmap["server0"], any_format=True) or {}).get("share_id")
        if current != self.manifest["share_id"]:
            raise SharesReplaced(
                f"the model was shared again (now {current}); this serve loaded {self.manifest['share_id']} "
                "and answers nothing more: start serve again"
            )
        missing = [player for player in shares.SHARE_HOLDERS if not shares.request_staged(player, request_id)]
        if missing:
            raise RequestError(f"request {request_id} is not staged on {', '.join(missing)} (never staged, or expired)")

    def predict(self, request_id: str, count: int) -> None:
        import tensorflow as tf

        bucket = next(size for size in self.buckets if size >= count)
        try:
            self._step(bucket)(tf.constant(request_id), tf.constant(count, tf.int32))
        except tf.errors.NotFoundError:
            raise RequestError(f"request {request_id} expired before it ran") from None
        except tf.errors.InvalidArgumentError as error:
            raise RequestError(f"staged input does not fit the model input {self.summary.input_shape} x {count}: {error.message.splitlines()[0]}") from None
        except tf.errors.UnavailableError:
            self._name_lost_player()
            raise

    def _name_lost_player(self, grace: float = 5.0) -> None:
        """Raise PlayerUnreachable naming the player a step lost. TensorFlow may see its connection
        drop a moment before the dead player's port closes: look again for a few seconds."""
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            self.check_players()
            time.sleep(0.2)

    def _private(self, share0, share1):
        from privatemodel.runtime.mpc.tfe import tfe

        factory = self.protocol.tensor_factory
        return tfe.protocol.pond.PondPrivateTensor(self.protocol, factory.tensor(share0), factory.tensor(share1), True)

    def _step(self, bucket):
        with self._steps_lock:
            if bucket not in self._steps:
                self._steps[bucket] = self._build_step(bucket)
            return self._steps[bucket]

    def _build_step(self, bucket):
        import tensorflow as tf

        from privatemodel.runtime.mpc.tfe import tfe

        model = tfe.keras.models.model_from_config(_with_batch_size(self.summary.config, bucket))
        model.set_weights(list(self._weights))
        example_shape = list(self.summary.input_shape)

        def padded_input(player, request_id, count):
            rows = shares.read_request_input(player, request_id, count, example_shape)
            with tf.device(device_name(player)):
                padding = [[0, bucket - count]] + [[0, 0]] * len(example_shape)
                return tf.ensure_shape(tf.pad(rows, padding), [bucket] + example_shape)

        @tf.function(input_signature=[tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.int32)])
        def step(request_id, count):
            x = self._private(padded_input("server0", request_id, count), padded_input("server1", request_id, count))
            y = model(x)
            for player, share in zip(shares.SHARE_HOLDERS, (y.share0, y.share1)):
                shares.write_request_output(player, request_id, share.value[:count])

        return step


def _with_batch_size(config: dict, batch_size: int) -> dict:
    """tf-encrypted builds static shapes from the first layer's batch_input_shape."""
    config = copy.deepcopy(config)
    first = next(layer for layer in config["layers"] if layer["class_name"] != "InputLayer")
    shape = first["config"].get("batch_input_shape")
    if shape is None:
        shape = next(layer for layer in config["layers"] if layer["class_name"] == "InputLayer")["config"]["batch_input_shape"]
    first["config"]["batch_input_shape"] = [batch_size] + list(shape[1:])
    return config
