"""Connecting this process to the three players.

TensorFlow 2 runs one controller per process: the process that connects builds the graphs and the
players execute them. Shares stay on the players; only what a graph explicitly fetches comes back.
"""
import logging
import socket
import time

from privatemodel.runtime.mpc import hostmap as hostmaps

log = logging.getLogger(__name__)

JOB_NAME = "tfe"  # tf-encrypted's RemoteConfig job name; players and controllers must agree


def device_name(player: str) -> str:
    return f"/job:{JOB_NAME}/replica:0/task:{hostmaps.PLAYER_NAMES.index(player)}/device:CPU:0"


def connect(hostmap: dict, timeout: float = 10.0) -> None:
    """Connect to all players, after checking each answers, so a dead one is named instead of awaited."""
    import tensorflow as tf

    started = time.monotonic()
    hostmaps.check_reachable(hostmap, timeout=timeout)
    controller = controller_address(hostmap)
    cluster = tf.train.ClusterSpec({JOB_NAME: list(hostmap.values()), "localhost": [controller]})
    tf.config.experimental_connect_to_cluster(cluster, job_name="localhost")
    log.info("connected to players %s as %s in %.2f s", dict(hostmap), controller, time.monotonic() - started)


def controller_address(hostmap: dict) -> str:
    """HOST:PORT where the players can reach this process: graphs make them fetch tensors from it.

    TensorFlow's default, localhost:PORT, only works when every player runs on this machine. The
    address this machine uses towards server0 is the one the players see (a pod's IP in Kubernetes).
    """
    host, port = hostmaps.parse_address(hostmap[hostmaps.PLAYER_NAMES[0]])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))  # UDP: picks the route and source address, sends nothing
        own_ip = probe.getsockname()[0]
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as free:
        free.bind(("", 0))
        free_port = free.getsockname()[1]
    return f"{own_ip}:{free_port}"


def connect_securenn(hostmap: dict, timeout: float = 10.0):
    """Connect and return the SecureNN protocol over these players (server2 is the crypto producer)."""
    from privatemodel.runtime.mpc.tfe import tfe

    connect(hostmap, timeout)
    config = tfe.RemoteConfig(hostmap, job_name=JOB_NAME)
    tfe.set_config(config)
    protocol = tfe.protocol.SecureNN()
    tfe.set_protocol(protocol)
    return protocol
