"""The hostmap: where each party's TensorFlow server is, and how parties reach each other.

A JSON object, the same file for every party of one deployment (players, share, serve):

    {"server0": "HOST:PORT", "server1": "HOST:PORT", "server2": "HOST:PORT",
     "share": "HOST:PORT", "serve": "HOST:PORT",                      (optional)
     "mesh": {"server0": "HOST:PORT", ..., "share": ..., "serve": ...}} (optional)

Without "mesh" every party runs on this machine and TensorFlow's addresses must be loopback. With
"mesh" each party's TensorFlow server still listens on loopback, and a peer's address in this file
is a TLS tunnel on the party's own loopback (see mesh.py) leading to that peer's "mesh" address.
"""
import ipaddress
import json
import socket
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

from privatemodel.contract import CONTROLLER_NAMES, MESH_KEY, PARTY_NAMES, PLAYER_NAMES

__all__ = ["PLAYER_NAMES", "Hostmap", "HostmapError", "PlayerUnreachable", "load", "save", "validate"]


class HostmapError(ValueError):
    pass


class PlayerUnreachable(ConnectionError):
    def __init__(self, player: str, address: str, reason: str):
        super().__init__(f"player {player} at {address} is unreachable: {reason}")
        self.player = player
        self.address = address


@dataclass(frozen=True)
class Hostmap:
    players: "OrderedDict[str, str]"  # player -> TensorFlow HOST:PORT, in SecureNN's order
    controllers: dict = field(default_factory=dict)  # controller -> TensorFlow HOST:PORT, if fixed
    mesh: dict = field(default_factory=dict)  # party -> its TLS listener HOST:PORT (empty: one machine)

    def __getitem__(self, party: str) -> str:
        return self.players[party] if party in self.players else self.controllers[party]

    def to_dict(self) -> dict:
        data = dict(self.players)
        data.update(self.controllers)
        if self.mesh:
            data[MESH_KEY] = dict(self.mesh)
        return data


def parse_address(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise HostmapError(f"address {address!r} is not HOST:PORT")
    return host, int(port)


def is_loopback(address: str) -> bool:
    host, _ = parse_address(address)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def validate(data, source: str = "hostmap") -> Hostmap:
    if not isinstance(data, dict):
        raise HostmapError(f"{source}: expected a JSON object, got {type(data).__name__}")
    players = [key for key in data if key in PLAYER_NAMES]
    if players != list(PLAYER_NAMES):
        raise HostmapError(f"{source}: expected players {list(PLAYER_NAMES)} in this order, got {players}")
    unknown = [key for key in data if key not in PARTY_NAMES and key != MESH_KEY]
    if unknown:
        raise HostmapError(f"{source}: unknown keys {unknown}; expected parties {list(PARTY_NAMES)} and {MESH_KEY!r}")
    for name in PARTY_NAMES:
        if name in data:
            _check_address(data[name], f"{source}: {name}")
    mesh = data.get(MESH_KEY) or {}
    if mesh:
        if not isinstance(mesh, dict) or sorted(mesh) != sorted(PARTY_NAMES):
            got = sorted(mesh) if isinstance(mesh, dict) else type(mesh).__name__
            raise HostmapError(f"{source}: {MESH_KEY}: expected the TLS address of every party {list(PARTY_NAMES)}, got {got}")
        for name, address in mesh.items():
            _check_address(address, f"{source}: {MESH_KEY}.{name}")
        missing = [name for name in CONTROLLER_NAMES if name not in data]
        if missing:
            raise HostmapError(f"{source}: with {MESH_KEY}, the controllers' TensorFlow addresses {missing} are needed too")
    tensorflow_addresses = [data[name] for name in PARTY_NAMES if name in data]
    if not mesh and not all(is_loopback(address) for address in tensorflow_addresses):
        raise HostmapError(
            f"{source}: players on other hosts must be reached through the TLS mesh: add a {MESH_KEY!r} "
            "section (TensorFlow's own servers only ever listen on loopback)"
        )
    return Hostmap(
        players=OrderedDict((name, data[name]) for name in PLAYER_NAMES),
        controllers={name: data[name] for name in CONTROLLER_NAMES if name in data},
        mesh=dict(mesh),
    )


def _check_address(address, where):
    if not isinstance(address, str):
        raise HostmapError(f"{where}: expected a HOST:PORT string, got {address!r}")
    try:
        parse_address(address)
    except HostmapError as error:
        raise HostmapError(f"{where}: {error}") from None


def load(path) -> Hostmap:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise HostmapError(f"cannot read hostmap {path}: {error.strerror}") from None
    try:
        data = json.loads(text, object_pairs_hook=OrderedDict)
    except json.JSONDecodeError as error:
        raise HostmapError(f"{path}: not valid JSON: {error}") from None
    return validate(data, source=str(path))


def save(path, hostmap: Hostmap) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(hostmap.to_dict(), indent=2) + "\n")


def check_reachable(hostmap: Hostmap, players=PLAYER_NAMES, timeout: float = 5.0) -> None:
    """Fail fast, naming the player, instead of letting TensorFlow retry a dead address forever.

    Through the mesh, the player's TLS listener is what answers (the local tunnel always would).
    """
    for name in players:
        address = hostmap.mesh.get(name) or hostmap.players[name]
        try:
            with socket.create_connection(parse_address(address), timeout=timeout):
                pass
        except OSError as error:
            reason = error.strerror or str(error) or type(error).__name__
            raise PlayerUnreachable(name, address, reason) from None
