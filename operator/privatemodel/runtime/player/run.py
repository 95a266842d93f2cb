"""One SecureNN player: a TensorFlow server that executes the graphs controllers send it.

It runs in its own state directory, where its share of the model is kept (see shares.py).
"""
import logging
import os
import signal
import threading
from pathlib import Path

from privatemodel.runtime.mpc import hostmap as hostmaps
from privatemodel.runtime.mpc.session import JOB_NAME
from privatemodel.runtime.player import storage

log = logging.getLogger(__name__)


def run_player(name: str, hostmap: dict, state_dir=None, threads: int = 1) -> None:
    """Serve until SIGTERM or SIGINT.

    threads: TensorFlow's inter- and intra-op pools. SecureNN's many small ops gain nothing from
    more, and three players on a 2-core machine answered ~15% faster with 1 than with the default.
    """
    import tensorflow as tf

    from privatemodel.runtime.mpc import secure_random

    if name not in hostmaps.PLAYER_NAMES:
        raise hostmaps.HostmapError(f"unknown player {name!r}; expected one of {', '.join(hostmaps.PLAYER_NAMES)}")
    # Graphs sent here use the secure random op: its kernels must be registered in this process.
    secure_random.load()
    state_dir = Path(state_dir or storage.default_state_dir(name))
    state_dir.mkdir(parents=True, exist_ok=True)
    storage.lock_state_dir(state_dir, name)
    os.chdir(state_dir)

    cluster = tf.train.ClusterSpec({JOB_NAME: list(hostmap.values())})
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=threads, intra_op_parallelism_threads=threads)
    server = tf.distribute.Server(
        cluster, job_name=JOB_NAME, task_index=hostmaps.PLAYER_NAMES.index(name), config=config, start=True
    )
    log.info("player %s listening on %s, state in %s", name, hostmap[name], state_dir)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    # The server runs on its own threads; waiting here keeps signals deliverable.
    stop.wait()
    log.info("player %s stopping", name)
    # tf.distribute.Server has no stop(); its shares are on disk, nothing in memory needs saving.
    os._exit(0)
