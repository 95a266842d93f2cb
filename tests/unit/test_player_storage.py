"""A player's state directory: its own by default, and locked while the player runs."""
import pytest

from privatemodel.runtime.player import storage


def test_default_state_dir_is_named_after_the_player():
    assert str(storage.default_state_dir("server1")) == "privatemodel-server1"


def test_share_files_name_their_holder():
    assert storage.weights_file("abc", "server0") != storage.weights_file("abc", "server1")
    assert storage.weights_file("abc", "server0") == "weights-abc-server0.share"


def test_a_locked_state_dir_refuses_a_second_player(tmp_path, monkeypatch):
    monkeypatch.setattr(storage, "_held_locks", [])
    storage.lock_state_dir(tmp_path, "server0")
    with pytest.raises(storage.StateDirInUse, match=r"is in use by player server0 \(pid \d+\); give each player its own --state-dir \(default ./privatemodel-server2\)"):
        storage.lock_state_dir(tmp_path, "server2")
    storage._held_locks[0].close()  # the player exits: the directory is free again
    storage.lock_state_dir(tmp_path, "server2")
    storage._held_locks[-1].close()
