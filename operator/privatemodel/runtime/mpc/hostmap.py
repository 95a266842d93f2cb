"""The hostmap: which address each SecureNN player listens on.

A JSON object {"server0": "HOST:PORT", "server1": ..., "server2": ...}, the same file every
process of one deployment reads (players, share, serve, clients).
"""
import json
import socket
from collections import OrderedDict
from pathlib import Path

# SecureNN's fixed roles: server0 and server1 hold the shares, server2 produces randomness.
PLAYER_NAMES = ("server0", "server1", "server2")


class HostmapError(ValueError):
    pass


class PlayerUnreachable(ConnectionError):
    def __init__(self, player: str, address: str, reason: str):
        super().__init__(f"player {player} at {address} is unreachable: {reason}")
        self.player = player
        self.address = address


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise HostmapError(f"address {address!r} is not HOST:PORT")
    return host, int(port)


def validate(hostmap: dict, source: str = "hostmap") -> "OrderedDict[str, str]":
    if not isinstance(hostmap, dict) or list(hostmap) != list(PLAYER_NAMES):
        got = list(hostmap) if isinstance(hostmap, dict) else type(hostmap).__name__
        raise HostmapError(f"{source}: expected players {list(PLAYER_NAMES)} in this order, got {got}")
    for name, address in hostmap.items():
        if not isinstance(address, str):
            raise HostmapError(f"{source}: {name}: expected a HOST:PORT string, got {address!r}")
        try:
            parse_address(address)
        except HostmapError as error:
            raise HostmapError(f"{source}: {name}: {error}") from None
    return OrderedDict(hostmap)


def load(path) -> "OrderedDict[str, str]":
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise HostmapError(f"cannot read hostmap {path}: {error.strerror}") from None
    try:
        hostmap = json.loads(text, object_pairs_hook=OrderedDict)
    except json.JSONDecodeError as error:
        raise HostmapError(f"{path}: not valid JSON: {error}") from None
    return validate(hostmap, source=str(path))


def save(path, hostmap: dict) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(validate(hostmap), indent=2) + "\n")


def check_reachable(hostmap: dict, players=PLAYER_NAMES, timeout: float = 5.0) -> None:
    """Fail fast, naming the player, instead of letting TensorFlow retry a dead address forever."""
    for name in players:
        address = hostmap[name]
        try:
            with socket.create_connection(parse_address(address), timeout=timeout):
                pass
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            raise PlayerUnreachable(name, address, reason) from None
