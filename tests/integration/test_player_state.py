"""Players never share state by accident: own default directories, a lock, shares that name their
holder, and serving that refuses anything but two distinct halves of one sharing run."""
import json
import shutil
import subprocess
import time

import pytest

from integration.support import manifest_of, run_cli
from privatemodel.runtime.local.cluster import free_port, privatemodel_command


def test_a_second_player_on_the_same_directory_is_refused(tmp_path):
    hostmap = tmp_path / "hostmap.json"
    hostmap.write_text(json.dumps({name: f"127.0.0.1:{free_port()}" for name in ("server0", "server1", "server2")}))
    first = subprocess.Popen(privatemodel_command("player", "server0", "--config", str(hostmap)), cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        lock = tmp_path / "privatemodel-server0" / "player.lock"
        deadline = time.monotonic() + 60
        while f"pid {first.pid}" not in (lock.read_text() if lock.exists() else ""):
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        second = subprocess.run(privatemodel_command("player", "server1", "--config", str(hostmap), "--state-dir", "privatemodel-server0"),
                                cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr
        assert f"state directory {tmp_path / 'privatemodel-server0'} is in use by player server0 (pid {first.pid})" in second.stderr
        assert "give each player its own --state-dir (default ./privatemodel-server1)" in second.stderr
    finally:
        first.terminate()
        first.wait(30)


@pytest.fixture
def shared_on_scratch(scratch_cluster, reference_model):
    result = run_cli("share", "--model", str(reference_model["path"]), "--config", str(scratch_cluster.hostmap_path))
    assert result.returncode == 0, result.stderr
    return manifest_of(scratch_cluster)


def test_shares_name_their_holder(scratch_cluster, shared_on_scratch):
    share_id = shared_on_scratch["share_id"]
    for player in ("server0", "server1"):
        assert manifest_of(scratch_cluster, player)["holder"] == player
        assert (scratch_cluster.state_dir(player) / f"weights-{share_id}-{player}.share").stat().st_size > 0
    assert not list(scratch_cluster.state_dir("server2").glob("weights-*"))


@pytest.mark.parametrize("break_it, message", [
    ("copy the share", "hold identical shares of {share_id}: they were copied or share a disk"),
    ("copy the manifest", "holds the manifest of server0: two players share one state directory"),
])
def test_serving_refuses_shares_that_are_not_two_halves(scratch_cluster, shared_on_scratch, break_it, message):
    share_id = shared_on_scratch["share_id"]
    names = {"copy the share": f"weights-{share_id}-{{}}.share", "copy the manifest": "manifest.json"}[break_it]
    source, target = (scratch_cluster.state_dir(p) / names.format(p) for p in ("server0", "server1"))
    original = target.read_bytes()
    shutil.copyfile(source, target)
    try:
        result = run_cli("serve", "--config", str(scratch_cluster.hostmap_path), "--port", str(free_port()), "--host", "127.0.0.1",
                         "--tls-dir", str(scratch_cluster.tls_dir("serve")))
    finally:
        target.write_bytes(original)
    assert result.returncode == 2, result.stderr
    assert message.format(share_id=share_id) in result.stderr
