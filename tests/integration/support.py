"""Helpers the integration tests share."""
import contextlib
import json
import os
import socket
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


def tcp_sockets(pid):
    """(address, port, state) of each TCP socket the process holds, read from /proc; the state as
    /proc writes it ("0A" is LISTEN, "01" ESTABLISHED)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = []
    for table, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        with open(f"/proc/{pid}/net/{table}") as lines:
            for line in list(lines)[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if inode not in inodes:
                    continue
                address, port = local.split(":")
                raw = bytes.fromhex(address)
                if family == socket.AF_INET:
                    raw = raw[::-1]
                else:  # /proc prints each 32-bit word in host (little-endian) order
                    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                found.append((socket.inet_ntop(family, raw), int(port, 16), state))
    return found
