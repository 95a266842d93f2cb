"""How a request's shares travel between a client and the players, matched by a request key.

Each share holder keeps two staging maps (TensorFlow MapStage, shared by name across every
controller connected to it): inputs that clients staged for the server, outputs that the server
staged for clients. A key is a random 63-bit number only the client and the server know, so
concurrent clients each get back their own answer.
"""
import secrets

INPUTS = "privatemodel-inputs"
OUTPUTS = "privatemodel-outputs"


def new_key() -> int:
    return secrets.randbits(63)


def stage(map_name, key, share):
    import tensorflow as tf

    return tf.raw_ops.MapStage(key=key, indices=[0], values=[share], dtypes=[tf.int64], shared_name=map_name)


def unstage(map_name, key):
    """Blocks until the key is staged."""
    import tensorflow as tf

    (share,) = tf.raw_ops.MapUnstage(key=key, indices=[0], dtypes=[tf.int64], shared_name=map_name)
    return share
