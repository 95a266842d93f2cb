"""Private predictions on the shares already on the players; no .h5 needed.

Requests run in batches (the endpoint coalesces concurrent ones). Per batch, one tf.function per
bucket of total rows reads every request's query shares where each holder's ingress staged them,
runs the SecureNN model once, and writes each request's own rows of the answer shares beside its
query, for the ingress to hand to that client, but only once server0's manifest still names the
loaded shares. A step that fails (a request not staged, staged with the wrong size, or deleted; the
model shared again) is explained by a small check graph, which finds the requests to refuse; the
rest run again.
Nothing is revealed anywhere: only sizes and a share id come back; each client alone adds its two
answer shares.
"""
import copy
import functools
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
# Not clients' ids (those are hex): these files are reused at every start, never piled up.
WARM_UP_ID = "warm-up"
# A step has one slot per row of its bucket (graph ops unrolled, see storage.read_request_inputs);
# slots no request fills read this empty input (no rows) and write an empty answer beside it
# (their writes may interleave: nothing reads that file).
UNUSED_SLOT_ID = "unused-slot"


class RequestError(ValueError):
    """The request is wrong; the server is fine and serves the next one."""


class SharesReplaced(RuntimeError):
    """The model was shared again: the shares this serve loaded are stale, it must not answer."""


class _StagedInputChanged(Exception):
    """A step could not read a staged input the check had found: a client deleted it, or it expired."""


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
        weights = [self._private(s0, s1) for s0, s1 in zip(holders["server0"], holders["server1"])]
        self._model = self._build_model(weights)
        self._write_request_files(UNUSED_SLOT_ID, {".in": b""})
        log.info("loaded shares %s (%d weights) in %.1f s", share_id, len(weights), time.monotonic() - started)

    def warm_up(self, batch_sizes=(1,)) -> None:
        """Trace and run each graph (each bucket's step, and the check a failing step runs) once, so
        that no real request waits for a compile."""
        for count in batch_sizes:
            started = time.monotonic()
            self._write_request_files(WARM_UP_ID, {".in": np.zeros((count,) + self.summary.input_shape, dtype="<i8").tobytes()})
            refused = self.refusals([(WARM_UP_ID, count)]) or self.run_batch([(WARM_UP_ID, count)])
            if refused:
                raise RuntimeError(f"warm-up of batch size {count} failed: {refused[WARM_UP_ID]}")
            self._write_request_files(WARM_UP_ID, {".in": b"", ".out": b""})
            log.info("warmed up batch size %d in %.1f s", count, time.monotonic() - started)

    def is_warm(self, count: int) -> bool:
        """Whether a batch of this many rows runs without a compile."""
        return next(size for size in self.buckets if size >= count) in self._steps

    @staticmethod
    def _write_request_files(request_id: str, contents: dict) -> None:
        import tensorflow as tf

        for player in shares.SHARE_HOLDERS:
            with tf.device(device_name(player)):
                for suffix, data in contents.items():
                    path = f"{shares.REQUESTS_DIR}/{request_id}{suffix}"
                    tf.io.write_file(path, data)
                    # A remote write may still be queued when the call returns (a graph run next
                    # could miss it): reading the file back waits for it.
                    tf.strings.length(tf.io.read_file(path)).numpy()

    def check_players(self) -> None:
        hostmaps.check_reachable(self.hostmap, timeout=2.0)

    def validate(self, request_id, count, share_id=None) -> None:
        """Before a request is queued: well-formed and prepared for these shares (no player is asked)."""
        if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= self.max_batch:
            raise RequestError(f"count must be an integer from 1 to {self.max_batch}, got {count!r}")
        if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
            raise RequestError("id must be 32 lowercase hex digits")
        if share_id is not None and share_id != self.manifest["share_id"]:
            raise RequestError(
                f"the client prepared its query for shares {share_id}, this server serves {self.manifest['share_id']}: "
                "the model was shared again; fetch the model's metadata and retry"
            )

    def run_batch(self, requests: list[tuple[str, int]]) -> dict[str, RequestError]:
        """Answer these (request id, count) pairs in one MPC step; the refused ones, by id, with why.

        Usually one call to the players: the step itself. One client's request never fails the
        others: if the step fails, the check finds the requests not staged right (refused), and the
        step runs again without them; a failure the check cannot explain (a client changed its input
        during the step) runs each request alone. Raises SharesReplaced, or the players' errors.
        """
        try:
            self._run_step(requests)
            return {}
        except _StagedInputChanged as error:
            step_error = error
        refused = self.refusals(requests)
        runnable = [request for request in requests if request[0] not in refused]
        if refused:
            return refused | (self.run_batch(runnable) if runnable else {})
        if len(requests) == 1:
            return {requests[0][0]: RequestError(f"request {requests[0][0]} {step_error}")}
        for request in requests:  # no one to blame by the check: alone, each request's error is its own
            refused.update(self.run_batch([request]))
        return refused

    def refusals(self, requests: list[tuple[str, int]]) -> dict[str, RequestError]:
        """One call to the players for the whole batch: the loaded shares are still theirs (else
        SharesReplaced), and each request's input is staged on both holders with its count's size."""
        share_id, sizes = self._staged_sizes([request_id for request_id, _ in requests])
        if share_id != self.manifest["share_id"]:
            raise SharesReplaced(
                f"the model was shared again (now {share_id or None}); this serve loaded {self.manifest['share_id']} "
                "and answers nothing more: start serve again"
            )
        example_bytes = 8 * int(np.prod(self.summary.input_shape))
        refused = {}
        for index, (request_id, count) in enumerate(requests):
            staged = {player: int(sizes[player][index]) for player in shares.SHARE_HOLDERS}
            missing = [player for player, size in staged.items() if size < 0]
            wrong = {player: size for player, size in staged.items() if size != count * example_bytes}
            if missing:
                refused[request_id] = RequestError(f"request {request_id} is not staged on {', '.join(missing)} (never staged, or expired)")
            elif wrong:
                found = ", ".join(f"{size} on {player}" for player, size in wrong.items())
                refused[request_id] = RequestError(
                    f"request {request_id} asks for {count} input(s) of shape {self.summary.input_shape}, {count * example_bytes} "
                    f"bytes of int64 on each holder, but staged {found}: stage it again with X-Batch-Size {count}"
                )
        return refused

    def _staged_sizes(self, request_ids):
        """(server0's share id, {holder: staged input bytes per request, -1 if none})."""
        import tensorflow as tf

        # A file deleted between looking and reading fails the read: look again, it is then gone.
        for attempt in range(3):
            try:
                share_id, sizes = self._staged_check(tf.constant(request_ids, tf.string), tf.constant(shares.MANIFEST))
                return share_id.numpy().decode(), {player: size.numpy() for player, size in zip(shares.SHARE_HOLDERS, sizes)}
            except tf.errors.NotFoundError:
                if attempt == 2:
                    raise
            except tf.errors.UnavailableError:
                self._name_lost_player()
                raise

    def _run_step(self, requests):
        import tensorflow as tf

        request_ids, counts = zip(*requests)
        rows = sum(counts)
        bucket = next(size for size in self.buckets if size >= rows)
        unused = bucket - len(requests)  # each request has a row at least: never negative
        try:
            self._step(bucket)(tf.constant(request_ids + (UNUSED_SLOT_ID,) * unused, tf.string), tf.constant(counts + (0,) * unused, tf.int32),
                               tf.constant(shares.MANIFEST), tf.constant(self.manifest["share_id"]))
        except tf.errors.NotFoundError:
            raise _StagedInputChanged("was deleted or expired before it ran") from None
        except tf.errors.InvalidArgumentError as error:
            raise _StagedInputChanged(f"staged input changed and no longer fits the model input {self.summary.input_shape}: "
                                      f"{error.message.splitlines()[0]}") from None
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

    @functools.cached_property
    def _staged_check(self):
        import tensorflow as tf

        # The manifest's path is an input for the same reason as in the step.
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string), tf.TensorSpec([], tf.string)])
        def staged_check(request_ids, manifest_path):
            return shares.manifest_share_id("server0", manifest_path), [shares.staged_input_bytes(player, request_ids) for player in shares.SHARE_HOLDERS]

        return staged_check

    def _step(self, bucket):
        with self._steps_lock:
            if bucket not in self._steps:
                self._steps[bucket] = self._build_step(bucket)
            return self._steps[bucket]

    def _build_model(self, weights):
        """The model under SecureNN, once for every batch size: its layers take their shapes from
        the input each step traces. tf-encrypted runs a model on a batch of zeros as it builds it,
        on the players, and they keep what that computed: built for each batch size, the model
        held them another 100 MB at batch 64 (and took ~0.8 s more to compile each)."""
        from privatemodel.runtime.mpc.tfe import tfe

        model = tfe.keras.models.model_from_config(_with_batch_size(self.summary.config, 1))
        model.set_weights(weights)
        return model

    def _build_step(self, bucket):
        import tensorflow as tf

        from privatemodel.runtime.mpc import producer_seeds

        model = self._model
        example_shape = list(self.summary.input_shape)

        def padded_input(player, request_ids, counts):
            rows = shares.read_request_inputs(player, request_ids, counts, example_shape)
            with tf.device(device_name(player)):
                padding = [[0, bucket - tf.shape(rows)[0]]] + [[0, 0]] * len(example_shape)
                return tf.ensure_shape(tf.pad(rows, padding), [bucket] + example_shape)

        # The manifest's path is an input, not a constant: TensorFlow would fold a read of a constant
        # path into the graph once, and a re-share would go unseen.
        @tf.function(input_signature=[tf.TensorSpec([bucket], tf.string), tf.TensorSpec([bucket], tf.int32),
                                      tf.TensorSpec([], tf.string), tf.TensorSpec([], tf.string)])
        def step(request_ids, counts, manifest_path, loaded_share_id):
            x = self._private(*(padded_input(player, request_ids, counts) for player in shares.SHARE_HOLDERS))
            y = model(x)
            with tf.device(device_name("server0")):
                still_loaded = tf.debugging.assert_equal(shares.manifest_share_id("server0", manifest_path), loaded_share_id,
                                                         message="the model was shared again")
            with tf.control_dependencies([still_loaded]):
                for player, share in zip(shares.SHARE_HOLDERS, (y.share0, y.share1)):
                    shares.write_request_outputs(player, request_ids, counts, share.value)
            producer_seeds.send_all_as_seeds(tf.compat.v1.get_default_graph(), device_name)

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
