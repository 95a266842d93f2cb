"""Where the shares live: files in each player's own state directory.

TF2 remote variables die with the controller that created them, so the sharing step writes each
player's share with ops that run on that player, and serving reads them back there. Paths are
relative: a player runs in its state directory, so no controller needs to know the players' disks.
The manifest is written last and names the weights file: it is the commit point of a sharing run.
"""
import json

import numpy as np

from privatemodel.runtime.mpc.session import device_name

from privatemodel.contract import SHARE_HOLDERS

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
# Query and answer shares in flight, staged by the holder's ingress (see player/ingress.py).
REQUESTS_DIR = "requests"


class NoSharesError(RuntimeError):
    pass


def weights_file(share_id: str) -> str:
    return f"weights-{share_id}.share"


def write_weights(player: str, share_id: str, share) -> None:
    """`share` is an int64 tensor already on `player`; it is serialized there, never fetched."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        tf.io.write_file(weights_file(share_id), tf.io.serialize_tensor(share))


def read_weights(player: str, share_id: str):
    import tensorflow as tf

    with tf.device(device_name(player)):
        return tf.io.parse_tensor(tf.io.read_file(weights_file(share_id)), tf.int64)


def erase_weights(player: str, share_id: str) -> None:
    """TensorFlow has no delete-file op; emptying the old share keeps no stale secret on disk."""
    import tensorflow as tf

    with tf.device(device_name(player)):
        tf.io.write_file(weights_file(share_id), tf.constant(b""))


def write_manifest(player: str, manifest: dict) -> None:
    import tensorflow as tf

    with tf.device(device_name(player)):
        tf.io.write_file(MANIFEST, tf.constant(json.dumps(manifest).encode()))


def read_manifest(player: str, address: str) -> dict | None:
    """The public facts about the shared model, as this player holds them; None if it holds none."""
    import tensorflow as tf

    try:
        with tf.device(device_name(player)):
            text = tf.io.read_file(MANIFEST).numpy()
    except tf.errors.NotFoundError:
        return None
    manifest = json.loads(text)
    if manifest.get("format") != FORMAT_VERSION:
        raise NoSharesError(f"player {player} at {address} holds shares in an unknown format {manifest.get('format')}")
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
