"""Helpers the integration tests share."""
import json
import subprocess

import numpy as np

from privatemodel.runtime.local.cluster import privatemodel_command


def run_cli(*args, timeout=180):
    """`privatemodel ARGS` in its own process, as users run it."""
    return subprocess.run(privatemodel_command(*args), capture_output=True, text=True, timeout=timeout)


def manifest_of(cluster, player="server0"):
    """Read straight from the player's disk: what the player holds, not what a client is told."""
    return json.loads((cluster.state_dir(player) / "manifest.json").read_text())


def assert_matches_plaintext(private, plaintext):
    private, plaintext = np.asarray(private), np.asarray(plaintext)
    assert private.shape == plaintext.shape
    assert np.abs(private - plaintext).max() <= 0.1
    assert (private.argmax(axis=1) == plaintext.argmax(axis=1)).all()
