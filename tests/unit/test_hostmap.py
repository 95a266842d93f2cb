import json
import socket

import pytest

from privatemodel.runtime.mpc import hostmap


def test_load_keeps_player_order(tmp_path):
    path = tmp_path / "hostmap.json"
    path.write_text(json.dumps({"server0": "a:1", "server1": "b:2", "server2": "c:3"}))
    assert list(hostmap.load(path).items()) == [("server0", "a:1"), ("server1", "b:2"), ("server2", "c:3")]


@pytest.mark.parametrize(
    "content, message",
    [
        ({"server0": "a:1", "server1": "b:2"}, "expected players ['server0', 'server1', 'server2']"),
        ({"server1": "b:2", "server0": "a:1", "server2": "c:3"}, "in this order"),
        ({"server0": "a", "server1": "b:2", "server2": "c:3"}, "server0: address 'a' is not HOST:PORT"),
        ({"server0": "a:1", "server1": "b:99999", "server2": "c:3"}, "server1: address 'b:99999'"),
        ({"server0": "a:1", "server1": "b:2", "server2": 3}, "server2: expected a HOST:PORT string"),
    ],
)
def test_invalid_hostmaps_name_the_problem(tmp_path, content, message):
    path = tmp_path / "hostmap.json"
    path.write_text(json.dumps(content))
    with pytest.raises(hostmap.HostmapError, match=message.replace("[", r"\[").replace("]", r"\]")):
        hostmap.load(path)


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
        players = {"server0": live, "server1": f"127.0.0.1:{dead}", "server2": live}
        with pytest.raises(hostmap.PlayerUnreachable, match=f"player server1 at 127.0.0.1:{dead} is unreachable"):
            hostmap.check_reachable(players, timeout=2)
        hostmap.check_reachable(players, players=("server0", "server2"), timeout=2)
