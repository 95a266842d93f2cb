"""One SecureNN player: a TensorFlow server that executes the graphs its model's controllers send.

What reaches it: its TensorFlow server listens on loopback only (mpc/loopback); peers and the
model's controllers come in through the TLS mesh (mpc/mesh) with the model's certificates; clients
reach a share holder (server0, server1) only through its HTTPS ingress (player/ingress), which
stages query shares and hands out answer shares. Its share of the model stays in its state directory.
"""
import logging
import os
import signal
import threading
from pathlib import Path

from privatemodel.contract import SHARE_HOLDERS
from privatemodel.runtime.mpc import hostmap as hostmaps
from privatemodel.runtime.mpc import loopback
from privatemodel.runtime.mpc.mesh import Mesh
from privatemodel.runtime.mpc.session import JOB_NAME
from privatemodel.runtime.player import storage

log = logging.getLogger(__name__)


def run_player(name: str, hostmap, state_dir=None, threads: int = 1, tls_dir=None, ingress_port=None, ingress_host="0.0.0.0", max_batch=None) -> None:
    """Serve until SIGTERM or SIGINT, or until the party's TLS tunnels die.

    threads: TensorFlow's inter- and intra-op pools. SecureNN's many small ops gain nothing from
    more, and three players on a 2-core machine answered ~15% faster with 1 than with the default.
    """
    import tensorflow as tf

    from privatemodel.runtime.mpc import secure_random

    if name not in hostmaps.PLAYER_NAMES:
        raise hostmaps.HostmapError(f"unknown player {name!r}; expected one of {', '.join(hostmaps.PLAYER_NAMES)}")
    if ingress_port is not None and name not in SHARE_HOLDERS:
        raise hostmaps.HostmapError(f"only the share holders {', '.join(SHARE_HOLDERS)} have an ingress; {name} holds no share")
    if (hostmap.mesh or ingress_port is not None) and tls_dir is None:
        raise hostmaps.HostmapError("the TLS mesh and the ingress need this party's certificate: pass --tls-dir")
    loopback.check_active()
    # Graphs sent here use the secure random op: its kernels must be registered in this process.
    secure_random.load()
    state_dir = Path(state_dir or storage.default_state_dir(name)).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    storage.lock_state_dir(state_dir, name)
    os.chdir(state_dir)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    cluster = tf.train.ClusterSpec({JOB_NAME: list(hostmap.players.values())})
    config = tf.compat.v1.ConfigProto(inter_op_parallelism_threads=threads, intra_op_parallelism_threads=threads)
    tf.distribute.Server(cluster, job_name=JOB_NAME, task_index=hostmaps.PLAYER_NAMES.index(name), config=config, start=True)
    log.info("player %s: TensorFlow on %s (loopback only), state in %s", name, hostmap[name], state_dir)
    # After TensorFlow: once peers can connect, something answers. Without its tunnels a player
    # is useless to its peers: it exits, to be restarted whole.
    mesh = Mesh(name, hostmap, tls_dir, state_dir).start(on_exit=lambda: os._exit(1)) if hostmap.mesh else None

    ingress = None
    if ingress_port is not None:
        from privatemodel.runtime.player.ingress import Ingress

        options = {} if max_batch is None else {"max_batch": max_batch}
        ingress = Ingress(name, state_dir, tls_dir, ingress_port, ingress_host, **options).start()
    # The server runs on its own threads; waiting here keeps signals deliverable.
    stop.wait()
    log.info("player %s stopping", name)
    if ingress:
        ingress.stop()
    if mesh:
        mesh.stop()
    # tf.distribute.Server has no stop(); its shares are on disk, nothing in memory needs saving.
    logging.shutdown()
    os._exit(0)
