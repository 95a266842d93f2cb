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


def read_request_input(player: str, request_id, count, example_shape):
    """Graph op on `player`: the query share its ingress staged under request_id, [count, *example_shape]."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        path = tf.strings.join([REQUESTS_DIR, "/", request_id, ".in"])
        flat = tf.io.decode_raw(tf.io.read_file(path), tf.int64, little_endian=True)
        return tf.reshape(flat, tf.concat([[count], example_shape], axis=0))


def write_request_output(player: str, request_id, share) -> None:
    """Graph op on `player`: the answer share, where its ingress hands it to the client."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        path = tf.strings.join([REQUESTS_DIR, "/", request_id, ".out"])
        tf.io.write_file(path, tf.io.serialize_tensor(share))


def request_staged(player: str, request_id: str) -> bool:
    import tensorflow as tf

    with tf.device(device_name(player)):
        return int(tf.size(tf.io.matching_files(f"{REQUESTS_DIR}/{request_id}.in"))) == 1


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
