"""Connecting a controller (the sharing step or serving) to the three players.

TensorFlow 2 runs one controller per process: the process that connects builds the graphs and the
players execute them. Shares stay on the players; only what a graph explicitly fetches comes back.
Connecting opens a TensorFlow server in this process too (players fetch tensors from it): like
every party's, it listens on loopback only, and players reach it through the mesh.
"""
import logging
import socket
import time
from pathlib import Path

from privatemodel.runtime.mpc import hostmap as hostmaps
from privatemodel.runtime.mpc import loopback
from privatemodel.runtime.mpc.mesh import Mesh

log = logging.getLogger(__name__)

JOB_NAME = "tfe"  # tf-encrypted's RemoteConfig job name; players and controllers must agree
CONTROLLER_JOB = "localhost"


def device_name(player: str) -> str:
    return f"/job:{JOB_NAME}/replica:0/task:{hostmaps.PLAYER_NAMES.index(player)}/device:CPU:0"


def connect(hostmap: hostmaps.Hostmap, controller: str, tls_dir=None, work_dir=None, timeout: float = 10.0):
    """Join the players as `controller` ("share" or "serve"), through this process's own mesh if the hostmap has one."""
    import tensorflow as tf

    loopback.check_active()
    started = time.monotonic()
    if hostmap.mesh:
        if tls_dir is None:
            raise hostmaps.HostmapError("the hostmap names a TLS mesh: pass --tls-dir with this party's certificate")
        # Its stunnel lives as long as this process (it dies with it).
        Mesh(controller, hostmap, tls_dir, work_dir or Path.cwd()).start()
    hostmaps.check_reachable(hostmap, timeout=timeout)
    address = hostmap.controllers.get(controller) or f"127.0.0.1:{_free_loopback_port()}"
    cluster = tf.train.ClusterSpec({JOB_NAME: list(hostmap.players.values()), CONTROLLER_JOB: [address]})
    tf.config.experimental_connect_to_cluster(cluster, job_name=CONTROLLER_JOB)
    log.info("connected to players %s as %s (%s) in %.2f s", dict(hostmap.players), controller, address, time.monotonic() - started)


def _free_loopback_port() -> int:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        return free.getsockname()[1]


def connect_securenn(hostmap: hostmaps.Hostmap, controller: str, tls_dir=None, work_dir=None, timeout: float = 10.0):
    """Connect and return the SecureNN protocol over these players (server2 is the crypto producer)."""
    from privatemodel.runtime.mpc.tfe import tfe

    connect(hostmap, controller, tls_dir, work_dir, timeout)
    config = tfe.RemoteConfig(dict(hostmap.players), job_name=JOB_NAME)
    tfe.set_config(config)
    protocol = tfe.protocol.SecureNN()
    tfe.set_protocol(protocol)
    return protocol
