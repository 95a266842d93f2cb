"""Helpers the integration tests share."""
import contextlib
import json
import ssl
import subprocess
import urllib.error
import urllib.request

import numpy as np

from privatemodel import contract
from privatemodel.runtime.local.cluster import LocalCluster, privatemodel_command


def run_cli(*args, timeout=180):
    """`privatemodel ARGS` in its own process, as users run it."""
    return subprocess.run(privatemodel_command(*args), capture_output=True, text=True, timeout=timeout)


@contextlib.contextmanager
def local_players(directory):
    """Three local players in `directory` for as long as the block runs."""
    players = LocalCluster(directory)
    players.up()
    try:
        yield players
    finally:
        players.down()


def https_context(cluster):
    """Trusts the cluster's CA; certificates name parties (server0, serve), so no host name check."""
    context = ssl.create_default_context(cafile=str(cluster.tls_dir("serve") / contract.TLS_CA))
    context.check_hostname = False
    return context


def https_call(cluster, url, method="GET", body=None, headers=None):
    """(status, body as JSON or bytes) of one HTTPS request to an ingress or serving."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30, context=https_context(cluster)) as response:
            status, data = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, data = error.code, error.read()
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data


def manifest_of(cluster, player="server0"):
    """Read straight from the player's disk: what the player holds, not what a client is told."""
    return json.loads((cluster.state_dir(player) / "manifest.json").read_text())


def assert_matches_plaintext(private, plaintext):
    private, plaintext = np.asarray(private), np.asarray(plaintext)
    assert private.shape == plaintext.shape
    assert np.abs(private - plaintext).max() <= 0.1
    assert (private.argmax(axis=1) == plaintext.argmax(axis=1)).all()


def run_python(code, timeout=120):
    """Python code in a fresh interpreter of this environment (not through the `privatemodel` command)."""
    import sys

    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
