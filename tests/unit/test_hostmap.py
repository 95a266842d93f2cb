import json
import socket

import pytest

from privatemodel import contract
from privatemodel.runtime.mpc import hostmap

LOCAL = {"server0": "127.0.0.1:1", "server1": "127.0.0.1:2", "server2": "127.0.0.1:3"}
MESH = {
    **{name: f"127.0.0.1:{port}" for name, port in contract.MESH_TF_PORTS.items()},
    "mesh": {name: f"{name}.example:{contract.MESH_PORT}" for name in contract.PARTY_NAMES},
}


def write(tmp_path, content):
    path = tmp_path / "hostmap.json"
    path.write_text(json.dumps(content))
    return path


def test_load_keeps_player_order(tmp_path):
    loaded = hostmap.load(write(tmp_path, LOCAL))
    assert list(loaded.players.items()) == list(LOCAL.items())
    assert loaded.mesh == {} and loaded.controllers == {}


def test_a_mesh_hostmap_names_every_party(tmp_path):
    loaded = hostmap.load(write(tmp_path, MESH))
    assert loaded["serve"] == "127.0.0.1:4444"
    assert loaded.mesh["server1"] == "server1.example:4450"
    assert hostmap.validate(loaded.to_dict()) == loaded


@pytest.mark.parametrize(
    "content, message",
    [
        ({"server0": "127.0.0.1:1", "server1": "127.0.0.1:2"}, "expected players ['server0', 'server1', 'server2']"),
        ({"server1": "127.0.0.1:2", "server0": "127.0.0.1:1", "server2": "127.0.0.1:3"}, "in this order"),
        ({**LOCAL, "server0": "a"}, "server0: address 'a' is not HOST:PORT"),
        ({**LOCAL, "server1": "127.0.0.1:99999"}, "server1: address '127.0.0.1:99999'"),
        ({**LOCAL, "server2": 3}, "server2: expected a HOST:PORT string"),
        ({**LOCAL, "client": "127.0.0.1:9"}, "unknown keys ['client']"),
        # Off this machine TensorFlow's own port is never reachable: only the mesh leads there.
        ({**LOCAL, "server2": "10.0.0.3:4440"}, "players on other hosts must be reached through the TLS mesh"),
        ({**MESH, "mesh": {"server0": "a:1"}}, "expected the TLS address of every party"),
        ({key: value for key, value in MESH.items() if key != "share"}, "controllers' TensorFlow addresses ['share']"),
    ],
)
def test_invalid_hostmaps_name_the_problem(tmp_path, content, message):
    with pytest.raises(hostmap.HostmapError, match=message.replace("[", r"\[").replace("]", r"\]")):
        hostmap.load(write(tmp_path, content))


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(hostmap.HostmapError, match="cannot read hostmap"):
        hostmap.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(hostmap.HostmapError, match="not valid JSON"):
        hostmap.load(tmp_path / "bad.json")


def test_unreachable_player_is_named():
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            dead = closed.getsockname()[1]
        live = f"127.0.0.1:{listening.getsockname()[1]}"
        players = hostmap.validate({"server0": live, "server1": f"127.0.0.1:{dead}", "server2": live})
        with pytest.raises(hostmap.PlayerUnreachable, match=f"player server1 at 127.0.0.1:{dead} is unreachable"):
            hostmap.check_reachable(players, timeout=2)
        hostmap.check_reachable(players, players=("server0", "server2"), timeout=2)
