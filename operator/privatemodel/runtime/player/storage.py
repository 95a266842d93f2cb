"""Where the shares live: files in each player's own state directory.

TF2 remote variables die with the controller that created them, so the sharing step writes each
player's share with ops that run on that player, and serving reads them back there. Paths are
relative: a player runs in its state directory, so no controller needs to know the players' disks.
The manifest is written last and names the weights file: it is the commit point of a sharing run.

Players never share a state directory by accident: each one's default directory is named after it,
a lock refuses a second player on the same directory, and every share file and manifest names its
holder, so serving can refuse shares that are not two distinct halves of one sharing run.
"""
import fcntl
import json
import os
from pathlib import Path

import numpy as np

from privatemodel.runtime.mpc.session import device_name

from privatemodel.contract import SHARE_HOLDERS

MANIFEST = "manifest.json"
LOCK_FILE = "player.lock"
# 2: share files and manifests name their holder.
FORMAT_VERSION = 2
# Query and answer shares in flight, staged by the holder's ingress (see player/ingress.py).
REQUESTS_DIR = "requests"


class NoSharesError(RuntimeError):
    pass


class StateDirInUse(RuntimeError):
    pass


def default_state_dir(player: str) -> Path:
    return Path(f"privatemodel-{player}")


_held_locks = []  # open lock files: the lock lasts as long as this process


def lock_state_dir(state_dir: Path, player: str) -> None:
    """Refuse to run a second player on a directory a running player already uses."""
    lock = open(state_dir / LOCK_FILE, "a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip() or "another player"
        lock.close()
        raise StateDirInUse(
            f"state directory {state_dir.resolve()} is in use by {holder}; "
            f"give each player its own --state-dir (default ./{default_state_dir(player)})"
        ) from None
    lock.truncate(0)
    lock.write(f"player {player} (pid {os.getpid()})\n")
    lock.flush()
    _held_locks.append(lock)


def weights_file(share_id: str, player: str) -> str:
    return f"weights-{share_id}-{player}.share"


def write_weights(player: str, share_id: str, share) -> None:
    """`share` is an int64 tensor already on `player`; it is serialized there, never fetched."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        tf.io.write_file(weights_file(share_id, player), tf.io.serialize_tensor(share))


def read_weights(player: str, share_id: str):
    import tensorflow as tf

    with tf.device(device_name(player)):
        return tf.io.parse_tensor(tf.io.read_file(weights_file(share_id, player)), tf.int64)


def erase_weights(player: str, share_id: str) -> None:
    """TensorFlow has no delete-file op; emptying the old share keeps no stale secret on disk."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        tf.io.write_file(weights_file(share_id, player), tf.constant(b""))


def write_manifest(player: str, manifest: dict) -> None:
    import tensorflow as tf

    with tf.device(device_name(player)):
        tf.io.write_file(MANIFEST, tf.constant(json.dumps(dict(manifest, holder=player)).encode()))


def read_manifest(player: str, address: str, any_format: bool = False) -> dict | None:
    """The public facts about the shared model, as this player holds them; None if it holds none."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        # A failed remote op poisons this process's executor on that player and later ops on it
        # (the share's writes) are dropped silently: look before reading.
        if tf.io.matching_files(MANIFEST).numpy().size == 0:
            return None
        text = tf.io.read_file(MANIFEST).numpy()
    manifest = json.loads(text)
    if any_format:
        return manifest
    if manifest.get("format") != FORMAT_VERSION:
        raise NoSharesError(
            f"player {player} at {address} holds shares in format {manifest.get('format')}, "
            f"this privatemodel reads format {FORMAT_VERSION}: run `privatemodel share` again"
        )
    if manifest.get("holder") != player:
        raise NoSharesError(
            f"player {player} at {address} holds the manifest of {manifest.get('holder')}: two players "
            "share one state directory; give each its own --state-dir and run `privatemodel share` again"
        )
    return manifest


def read_consistent_manifest(hostmap: dict) -> dict:
    """Both share holders must hold shares from the same sharing run, or the model is unusable."""
    manifests = {player: read_manifest(player, hostmap[player]) for player in SHARE_HOLDERS}
    for player, manifest in manifests.items():
        if manifest is None:
            raise NoSharesError(
                f"no model shares on player {player} at {hostmap[player]}: run `privatemodel share` first"
            )
    ids = {player: m["share_id"] for player, m in manifests.items()}
    if len(set(ids.values())) != 1:
        raise NoSharesError(f"players hold shares from different sharing runs {ids}: run `privatemodel share` again")
    return manifests["server0"]


def check_distinct_shares(hostmap: dict, share_id: str) -> None:
    """Identical shares mean one file was read twice: the reconstructed weights would be garbage.

    Only a 64-bit fingerprint of server0's share travels to server1, and only the verdict leaves it.
    """
    import tensorflow as tf

    @tf.function
    def identical():
        with tf.device(device_name("server0")):
            fingerprint0 = tf.fingerprint([tf.io.read_file(weights_file(share_id, "server0"))])
        with tf.device(device_name("server1")):
            fingerprint1 = tf.fingerprint([tf.io.read_file(weights_file(share_id, "server1"))])
            return tf.reduce_all(tf.equal(fingerprint0, fingerprint1))

    if identical().numpy():
        raise NoSharesError(
            f"server0 at {hostmap['server0']} and server1 at {hostmap['server1']} hold identical shares of "
            f"{share_id}: they were copied or share a disk; give each player its own --state-dir and share again"
        )


def split_shares(flat_share, weight_shapes):
    """One flat share per player holds every weight; cut it back into the model's weights, in place."""
    import tensorflow as tf

    sizes = [int(np.prod(shape)) for shape in weight_shapes]
    return [tf.reshape(part, shape) for part, shape in zip(tf.split(flat_share, sizes), weight_shapes)]


def read_local_manifest(state_dir) -> dict | None:
    """The manifest as the player itself reads it from its own disk (the ingress does)."""
    from pathlib import Path

    try:
        return json.loads((Path(state_dir) / MANIFEST).read_text())
    except FileNotFoundError:
        return None


def _request_path(request_id, suffix):
    import tensorflow as tf

    return tf.strings.join([REQUESTS_DIR, "/", request_id, suffix])


def read_request_inputs(player: str, request_ids, counts, example_shape):
    """Graph ops on `player`: the query shares its ingress staged under each id (a tensor of static
    length), one request after another, [sum(counts), *example_shape]; no share leaves it. One read
    per id, no graph loop: on a remote player each loop iteration costs a round trip (~1 ms)."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        rows = [tf.reshape(tf.io.decode_raw(tf.io.read_file(_request_path(request_ids[slot], ".in")), tf.int64, little_endian=True),
                           tf.concat([[counts[slot]], example_shape], axis=0))
                for slot in range(request_ids.shape[0])]
        return tf.concat(rows, axis=0)


def write_request_outputs(player: str, request_ids, counts, share) -> None:
    """Graph ops on `player`: each request's own rows of the answer share, under its own id (a tensor
    of static length), where its ingress hands them to that request's client alone."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        starts = tf.cumsum(counts, exclusive=True)
        for slot in range(request_ids.shape[0]):
            rows = share[starts[slot]:starts[slot] + counts[slot]]
            tf.io.write_file(_request_path(request_ids[slot], ".out"), tf.io.serialize_tensor(rows))


def staged_input_bytes(player: str, request_ids):
    """Graph op on `player`: the size of each request's staged input share, -1 where none is staged.
    Only sizes leave the player; a missing file is looked for first, so it never fails an op there."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        def size(request_id):
            path = _request_path(request_id, ".in")
            return tf.cond(tf.size(tf.io.matching_files(path)) > 0,
                           lambda: tf.cast(tf.strings.length(tf.io.read_file(path)), tf.int64),
                           lambda: tf.constant(-1, tf.int64))

        return tf.map_fn(size, request_ids, fn_output_signature=tf.int64)


def manifest_share_id(player: str, manifest_path):
    """Graph op on `player`: the share id its manifest (at manifest_path, a tensor) names, "" if none."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        text = tf.cond(tf.size(tf.io.matching_files(manifest_path)) > 0, lambda: tf.io.read_file(manifest_path), lambda: tf.constant(""))
        # json.dumps writes '"share_id": "<hex>"'; a quote inside any other string is escaped, so this key is the real one.
        found = tf.strings.regex_full_match(text, r'.*"share_id": "[0-9a-f]+".*')
        return tf.where(found, tf.strings.regex_replace(text, r'^.*"share_id": "([0-9a-f]+)".*$', r"\1"), "")


def parse_tensor_file(path) -> np.ndarray:
    """An int64 tensor a graph serialized (tf.io.serialize_tensor); ValueError if incomplete."""
    from google.protobuf.message import DecodeError
    from tensorflow.core.framework import tensor_pb2

    proto = tensor_pb2.TensorProto()
    data = open(path, "rb").read()
    try:
        proto.ParseFromString(data)
    except DecodeError:
        raise ValueError(f"{path} is not a complete tensor") from None
    shape = tuple(d.size for d in proto.tensor_shape.dim)
    values = np.frombuffer(proto.tensor_content, dtype="<i8")
    if proto.dtype != 9 or values.size != int(np.prod(shape)):  # 9: DT_INT64
        raise ValueError(f"{path} is not a complete int64 tensor")
    return values.reshape(shape)
