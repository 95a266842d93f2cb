"""Where the shares live: files in each player's own state directory.

TF2 remote variables die with the controller that created them, so the sharing step writes each
player's share with ops that run on that player, and serving reads them back there. Paths are
relative: a player runs in its state directory, so no controller needs to know the players' disks.
The manifest is written last and names the weights file: it is the commit point of a sharing run.
"""
import json

import numpy as np

from privatemodel.runtime.mpc.session import device_name

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
SHARE_HOLDERS = ("server0", "server1")


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
