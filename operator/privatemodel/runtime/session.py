"""Connecting this process to the three players.

TensorFlow 2 runs one controller per process: the process that connects builds the graphs and the
players execute them. Shares stay on the players; only what a graph explicitly fetches comes back.
"""
import logging
import time

from privatemodel.runtime import hostmap as hostmaps

log = logging.getLogger(__name__)

JOB_NAME = "tfe"  # tf-encrypted's RemoteConfig job name; players and controllers must agree


def device_name(player: str) -> str:
    return f"/job:{JOB_NAME}/replica:0/task:{hostmaps.PLAYER_NAMES.index(player)}/device:CPU:0"


def connect(hostmap: dict, timeout: float = 10.0) -> None:
    """Connect to all players, after checking each answers, so a dead one is named instead of awaited."""
    import tensorflow as tf

    started = time.monotonic()
    hostmaps.check_reachable(hostmap, timeout=timeout)
    tf.config.experimental_connect_to_host(list(hostmap.values()), job_name=JOB_NAME)
    log.info("connected to players %s in %.2f s", dict(hostmap), time.monotonic() - started)


def connect_securenn(hostmap: dict, timeout: float = 10.0):
    """Connect and return the SecureNN protocol over these players (server2 is the crypto producer)."""
    from privatemodel.runtime.tfe import tfe

    connect(hostmap, timeout)
    config = tfe.RemoteConfig(hostmap, job_name=JOB_NAME)
    tfe.set_config(config)
    protocol = tfe.protocol.SecureNN()
    tfe.set_protocol(protocol)
    return protocol
