"""Faults on a cluster of their own: no shares yet, then a player that vanishes."""
import os
import signal

import pytest

from integration.support import local_players, run_cli
from privatemodel.runtime.local.cluster import LocalServing


@pytest.fixture(scope="module")
def fragile_cluster(tmp_path_factory):
    with local_players(tmp_path_factory.mktemp("fragile")) as players:
        yield players


def test_serve_without_shares_says_so(fragile_cluster):
    result = run_cli("serve", "--config", str(fragile_cluster.hostmap_path), "--port", "0",
                     "--tls-dir", str(fragile_cluster.tls_dir("serve")))
    assert result.returncode == 2
    server0 = fragile_cluster.hostmap["server0"]
    assert f"error: no model shares on player server0 at {server0}: run `privatemodel share` first" in result.stderr


def test_a_vanished_player_is_named_by_serve_share_and_predict(fragile_cluster, reference_model, tmp_path):
    config = str(fragile_cluster.hostmap_path)
    assert run_cli("share", "--model", str(reference_model["path"]), "--config", config).returncode == 0
    serving = LocalServing(fragile_cluster)
    serving.start()
    server1 = fragile_cluster.hostmap["server1"]
    lost = f"player server1 at {server1} is unreachable"

    os.kill(fragile_cluster.players["server1"].pid, signal.SIGKILL)
    assert serving.wait(timeout=60) == 3
    assert lost in serving.process.log_file.read_text()

    import numpy as np

    np.save(tmp_path / "digit.npy", reference_model["x"][0])
    for args in (
        ["share", "--model", str(reference_model["path"]), "--config", config],
        ["serve", "--config", config, "--port", "0", "--tls-dir", str(fragile_cluster.tls_dir("serve"))],
    ):
        result = run_cli(*args, timeout=120)
        assert result.returncode == 3, (args[0], result.stderr)
        assert f"error: {lost}" in result.stderr, (args[0], result.stderr)
    # The client only knows the ingresses: server1's is gone with its player.
    result = run_cli("predict", "--access", str(fragile_cluster.access_path), "--input", str(tmp_path / "digit.npy"), timeout=120)
    assert result.returncode == 3, result.stderr
    assert f"error: server1 at {fragile_cluster.ingress_url('server1')} is unreachable" in result.stderr
