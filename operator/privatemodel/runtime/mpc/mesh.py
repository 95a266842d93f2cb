"""The TLS mesh: how a party's TensorFlow server is reached by its peers, and by no one else.

Every party runs one stunnel (a small, long-maintained C TLS proxy, packaged by Debian; chosen over
haproxy for its size and its single purpose, and over a Python proxy for latency: SecureNN makes
many small round trips). Its config, per party:
- one listener on the party's mesh address that demands a certificate from the model's CA and
  forwards to the party's own TensorFlow server on loopback;
- one loopback tunnel per peer, on the port the hostmap gives that peer, that connects to the
  peer's mesh address with this party's certificate and accepts only the peer's own certificate.
Players tunnel to every other party; controllers to the players only (players never dial them
back through anything but the controllers' own listener).
"""
import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

from privatemodel import contract
from privatemodel.runtime.mpc.hostmap import Hostmap, parse_address

log = logging.getLogger(__name__)

START_TIMEOUT = 15.0


class MeshError(RuntimeError):
    pass


def peers_of(party: str) -> tuple:
    if party in contract.PLAYER_NAMES:
        return tuple(name for name in contract.PARTY_NAMES if name != party)
    return contract.PLAYER_NAMES


def stunnel_config(party: str, hostmap: Hostmap, tls_dir: Path) -> str:
    tls_dir = Path(tls_dir).resolve()
    common = [
        f"cert = {tls_dir / contract.TLS_CERT}",
        f"key = {tls_dir / contract.TLS_KEY}",
        f"CAfile = {tls_dir / contract.TLS_CA}",
        "verifyChain = yes",
        "requireCert = yes",
        "sslVersionMin = TLSv1.3",
        # gRPC's small messages would wait on Nagle's algorithm at every hop.
        "socket = l:TCP_NODELAY=1",
        "socket = r:TCP_NODELAY=1",
    ]
    lines = ["foreground = yes", "pid =", "syslog = no", "debug = warning", ""]
    lines += [f"[{party}-in]", f"accept = {listen_address(hostmap.mesh[party])}", f"connect = {hostmap[party]}", *common, ""]
    for peer in peers_of(party):
        lines += [
            f"[to-{peer}]",
            "client = yes",
            f"accept = {hostmap[peer]}",
            f"connect = {hostmap.mesh[peer]}",
            # The peer's pod may not exist yet: resolve its name at each connection.
            "delay = yes",
            f"checkHost = {peer}",
            *common,
            "",
        ]
    return "\n".join(lines)


class Mesh:
    """This party's stunnel, a child process; `on_exit` runs if it dies while the party runs."""

    def __init__(self, party: str, hostmap: Hostmap, tls_dir, work_dir):
        self.party = party
        self.hostmap = hostmap
        self.tls_dir = Path(tls_dir)
        self.config_path = Path(work_dir) / f"stunnel-{party}.conf"
        self._process = None
        self._stopping = False

    def start(self, on_exit=None) -> "Mesh":
        binary = shutil.which("stunnel4") or shutil.which("stunnel")
        if binary is None:
            raise MeshError("stunnel not found: install the Debian package stunnel4")
        for name in (contract.TLS_CA, contract.TLS_CERT, contract.TLS_KEY):
            if not (self.tls_dir / name).is_file():
                raise MeshError(f"TLS directory {self.tls_dir} lacks {name}: the mesh needs the party's certificate")
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(stunnel_config(self.party, self.hostmap, self.tls_dir))
        started = time.monotonic()
        # Its own session: a terminal's Ctrl-C reaches the party, which stops it in order.
        # Without the loopback library: the mesh listener is the one port of the party meant for peers.
        environment = {name: value for name, value in os.environ.items() if name != "LD_PRELOAD"}
        self._process = subprocess.Popen(
            [binary, str(self.config_path)], stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
            env=environment,
        )
        self._wait_listening(started)
        threading.Thread(target=self._supervise, args=(on_exit,), name="mesh", daemon=True).start()
        log.info("TLS mesh for %s up in %.2f s: listening on %s, tunnels to %s",
                 self.party, time.monotonic() - started, self.hostmap.mesh[self.party], ", ".join(peers_of(self.party)))
        return self

    def stop(self) -> None:
        self._stopping = True
        if self._process and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5)
            except subprocess.TimeoutExpired:
                self._process.kill()

    def _wait_listening(self, started):
        addresses = [self.hostmap[peer] for peer in peers_of(self.party)]
        addresses.append(listen_address(self.hostmap.mesh[self.party]).replace("0.0.0.0:", "127.0.0.1:"))
        while not all(_listening(address) for address in addresses):
            if self._process.poll() is not None:
                raise MeshError(f"stunnel for {self.party} exited with code {self._process.returncode} (config {self.config_path})")
            if time.monotonic() - started > START_TIMEOUT:
                self.stop()
                raise MeshError(f"stunnel for {self.party} not listening on {addresses} after {START_TIMEOUT:.0f} s")
            time.sleep(0.05)

    def _supervise(self, on_exit):
        code = self._process.wait()
        if not self._stopping:
            log.error("stunnel for %s exited with code %s: peers can no longer reach this party", self.party, code)
            if on_exit:
                on_exit()


def _die_with_parent():
    """No tunnel outlives its party, however the party ends (even os._exit or SIGKILL)."""
    import ctypes
    import signal

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def listen_address(mesh_address: str) -> str:
    """An IP in the hostmap is bound as it is (tests, one host); a DNS name means every interface."""
    host, port = parse_address(mesh_address)
    return f"{host if _is_ip(host) else '0.0.0.0'}:{port}"


def _listening(address) -> bool:
    try:
        with socket.create_connection(parse_address(address), timeout=0.5):
            return True
    except OSError:
        return False


def _is_ip(host: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET, host)
        return True
    except OSError:
        return False
