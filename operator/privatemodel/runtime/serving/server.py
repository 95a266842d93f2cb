"""Private predictions on the shares already on the players; no .h5 needed.

One tf.function per batch size bucket: take the request's input shares from the staging maps,
run the SecureNN model, stage the output shares for the client. Nothing is revealed anywhere: the
client alone adds the two output shares.
"""
import copy
import logging
import threading
import time

import numpy as np

from privatemodel.runtime.mpc import hostmap as hostmaps
from privatemodel.runtime.player import staging, storage as shares
from privatemodel.runtime.owner.model import ModelSummary
from privatemodel.runtime.mpc.session import connect_securenn, device_name

log = logging.getLogger(__name__)

DEFAULT_MAX_BATCH = 64


class RequestError(ValueError):
    """The request is wrong; the server is fine and serves the next one."""


def batch_buckets(max_batch: int) -> list[int]:
    """Batch sizes that get a compiled graph: powers of two, and the maximum."""
    buckets, size = [], 1
    while size < max_batch:
        buckets.append(size)
        size *= 2
    return buckets + [max_batch]


class PrivateModelServer:
    def __init__(self, hostmap: dict, max_batch: int = DEFAULT_MAX_BATCH):
        self.hostmap = hostmap
        self.buckets = batch_buckets(max_batch)
        self.max_batch = max_batch
        self._steps = {}
        self._steps_lock = threading.Lock()

    def load(self) -> None:
        """Connect, and read the shares into the players' memory; fails if there are none."""
        started = time.monotonic()
        self.protocol = connect_securenn(self.hostmap)
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
        for count in batch_sizes:
            started = time.monotonic()
            key = staging.new_key()
            zeros = np.zeros((count,) + self.summary.input_shape, dtype=np.int64)
            self._stage_inputs(key, zeros, zeros)
            self.predict(key, count)
            self._discard_outputs(key)
            log.info("warmed up batch size %d in %.1f s", count, time.monotonic() - started)

    def check_players(self) -> None:
        hostmaps.check_reachable(self.hostmap, timeout=2.0)

    def predict(self, key: int, count: int) -> None:
        if not isinstance(count, int) or not 1 <= count <= self.max_batch:
            raise RequestError(f"count must be an integer from 1 to {self.max_batch}, got {count!r}")
        if not isinstance(key, int) or not 0 <= key < 2**63:
            raise RequestError(f"key must be an integer from 0 to 2**63-1, got {key!r}")
        import tensorflow as tf

        bucket = next(size for size in self.buckets if size >= count)
        try:
            self._step(bucket)(tf.constant(key, tf.int64), tf.constant(count, tf.int32))
        except tf.errors.InvalidArgumentError as error:
            raise RequestError(f"staged input does not fit the model input {self.summary.input_shape} x {count}: {error.message.splitlines()[0]}") from None

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
        example_size = int(np.prod(example_shape))

        def padded_input(player, key, count):
            with tf.device(device_name(player)):
                rows = tf.reshape(staging.unstage(staging.INPUTS, key), [count, example_size])
                return tf.reshape(tf.pad(rows, [[0, bucket - count], [0, 0]]), [bucket] + example_shape)

        @tf.function(input_signature=[tf.TensorSpec([], tf.int64), tf.TensorSpec([], tf.int32)])
        def step(key, count):
            x = self._private(padded_input("server0", key, count), padded_input("server1", key, count))
            y = model(x)
            for player, share in zip(shares.SHARE_HOLDERS, (y.share0, y.share1)):
                with tf.device(device_name(player)):
                    staging.stage(staging.OUTPUTS, key, share.value[:count])

        return step

    def _stage_inputs(self, key, share0, share1):
        import tensorflow as tf

        for player, share in zip(shares.SHARE_HOLDERS, (share0, share1)):
            with tf.device(device_name(player)):
                staging.stage(staging.INPUTS, tf.constant(key, tf.int64), tf.constant(share))

    def _discard_outputs(self, key):
        import tensorflow as tf

        for player in shares.SHARE_HOLDERS:
            with tf.device(device_name(player)):
                staging.unstage(staging.OUTPUTS, tf.constant(key, tf.int64))


def _with_batch_size(config: dict, batch_size: int) -> dict:
    """tf-encrypted builds static shapes from the first layer's batch_input_shape."""
    config = copy.deepcopy(config)
    first = next(layer for layer in config["layers"] if layer["class_name"] != "InputLayer")
    shape = first["config"].get("batch_input_shape")
    if shape is None:
        shape = next(layer for layer in config["layers"] if layer["class_name"] == "InputLayer")["config"]["batch_input_shape"]
    first["config"]["batch_input_shape"] = [batch_size] + list(shape[1:])
    return config
