"""Players and serving as processes on this machine, for development, demos and tests.

Everything a local cluster starts is recorded in its directory (hostmap, PIDs, one log each), so
`down` stops exactly those processes and nothing else. Nothing listens beyond loopback: TensorFlow
servers are held there by mpc/loopback, the ingresses and serving bind 127.0.0.1. `up` makes a CA
for the cluster and one certificate per party, in that party's state directory (mode 0600), and
the clients' access file (access.json): clients reach the ingresses and serving over HTTPS.
"""
import json
import logging
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from privatemodel import contract, pki
from privatemodel.runtime.mpc import hostmap as hostmaps
from privatemodel.runtime.reference import cache_dir

log = logging.getLogger(__name__)

READY_TIMEOUT = 120.0


def default_dir() -> Path:
    return Path(os.environ.get("PRIVATEMODEL_LOCAL_DIR") or cache_dir() / "local")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def privatemodel_command(*args) -> list[str]:
    return [sys.executable, "-m", "privatemodel", *args]


class LocalProcess:
    """A child process whose PID is recorded in a file, so another invocation can stop it."""

    def __init__(self, name: str, directory: Path):
        self.name = name
        self.pid_file = directory / f"{name}.pid"
        self.log_file = directory / f"{name}.log"

    def start(self, command: list[str]) -> int:
        with open(self.log_file, "ab") as log_stream:
            self._child = subprocess.Popen(
                command, stdout=log_stream, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
            )
        self.pid_file.write_text(f"{self._child.pid}\n")
        return self._child.pid

    @property
    def pid(self) -> int | None:
        """The running process, whether this invocation or an earlier one started it."""
        child = getattr(self, "_child", None)
        if child is not None:
            return child.pid if child.poll() is None else None
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return None
        return pid if _is_ours(pid) else None

    def wait(self, timeout: float) -> int | None:
        """The exit code of a child started here, or None if it is still running after timeout."""
        try:
            return self._child.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 10.0) -> bool:
        pid = self.pid
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _is_ours(pid):
            time.sleep(0.05)
        if _is_ours(pid):
            os.kill(pid, signal.SIGKILL)
        child = getattr(self, "_child", None)
        if child is not None:
            child.wait()
        return True

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class LocalCluster:
    """Three players on this machine. `up` is idempotent; `down` stops only what `up` started.

    isolated=True (root only) puts each party in a network namespace of its own and connects them
    through the TLS mesh, as on several hosts; otherwise all share this machine's loopback.
    """

    def __init__(self, directory=None, isolated=False):
        self.directory = Path(directory) if directory else default_dir()
        self.hostmap_path = self.directory / "hostmap.json"
        self.access_path = self.directory / contract.ACCESS_FILE
        self.layout_path = self.directory / "layout.json"  # ingress URLs, the network namespaces' tag
        self.isolated = isolated
        self.players = {name: LocalProcess(name, self.directory) for name in hostmaps.PLAYER_NAMES}

    @property
    def hostmap(self) -> hostmaps.Hostmap:
        return hostmaps.load(self.hostmap_path)

    @property
    def network(self):
        """The parties' network namespaces, when isolated."""
        from privatemodel.runtime.local.netns import PartyNetwork

        tag = self._layout().get("network")
        return PartyNetwork(tag) if tag else None

    def state_dir(self, party: str) -> Path:
        return self.directory / "state" / party

    def tls_dir(self, party: str) -> Path:
        return self.state_dir(party) / "tls"

    def ingress_url(self, player: str) -> str:
        return self._layout()["ingress"][player]

    def command(self, party: str, *args) -> list[str]:
        """`privatemodel ARGS` as `party` runs it: in its namespace when isolated, with its certificate."""
        command = privatemodel_command(*args)
        if party in contract.CONTROLLER_NAMES:
            command += ["--tls-dir", str(self.tls_dir(party))]
        network = self.network
        return network.wrap(party, command) if network else command

    def share_command(self, model_path, *extra) -> list[str]:
        """The model owner's step against this cluster."""
        return self.command("share", "share", "--model", str(model_path), "--config", str(self.hostmap_path), *extra)

    def up(self) -> hostmaps.Hostmap:
        self.directory.mkdir(parents=True, exist_ok=True)
        running = {name: p.pid for name, p in self.players.items()}
        if all(running.values()):
            log.info("local players already running: %s", running)
            return self.hostmap
        self.down()
        self._issue_certificates()
        hostmap, ingress = self._isolated_layout() if self.isolated else self._loopback_layout()
        hostmaps.save(self.hostmap_path, hostmap)
        started = time.monotonic()
        for name, process in self.players.items():
            command = ["player", name, "--config", str(self.hostmap_path), "--state-dir", str(self.state_dir(name)),
                       "--tls-dir", str(self.tls_dir(name))]
            if name in ingress:
                host, port = hostmaps.parse_address(ingress[name])
                command += ["--ingress-port", str(port), "--ingress-host", "0.0.0.0" if self.isolated else host]
            process.start(self.command(name, *command))
        for name, process in self.players.items():
            # From here, what answers is the player's mesh listener (or its own server) and its ingress.
            addresses = [hostmap.mesh.get(name) or hostmap[name]] + ([ingress[name]] if name in ingress else [])
            _wait_until(
                lambda: all(_listening(address) for address in addresses),
                lambda: process.pid is None,
                f"player {name} ({', '.join(addresses)})",
                process,
            )
        log.info("local players up in %.1f s: %s (logs in %s)", time.monotonic() - started, dict(hostmap.players), self.directory)
        return hostmap

    def _loopback_layout(self):
        hostmap = hostmaps.validate({name: f"127.0.0.1:{free_port()}" for name in hostmaps.PLAYER_NAMES})
        ingress = {name: f"127.0.0.1:{free_port()}" for name in contract.SHARE_HOLDERS}
        self._save_layout(ingress=ingress)
        return hostmap, ingress

    def _isolated_layout(self):
        from privatemodel.runtime.local.netns import PartyNetwork

        network = PartyNetwork().up()
        # Recorded first, so `down` finds the namespaces whatever fails next.
        self._save_layout(network=network.tag)
        hostmap = hostmaps.validate({
            **{name: f"127.0.0.1:{port}" for name, port in contract.MESH_TF_PORTS.items()},
            "mesh": {name: f"{network.hosts[name]}:{contract.MESH_PORT}" for name in contract.PARTY_NAMES},
        })
        ingress = {name: f"{network.hosts[name]}:{contract.INGRESS_PORT}" for name in contract.SHARE_HOLDERS}
        self._save_layout(network=network.tag, ingress=ingress)
        return hostmap, ingress

    def _save_layout(self, network=None, ingress=None):
        layout = {"network": network, "ingress": {name: f"https://{address}" for name, address in (ingress or {}).items()}}
        self.layout_path.write_text(json.dumps(layout))

    def _layout(self) -> dict:
        try:
            return json.loads(self.layout_path.read_text())
        except FileNotFoundError:
            return {}

    def _issue_certificates(self) -> None:
        """A fresh CA per `up`; its key is dropped once every party has its certificate."""
        ca_key, ca_certificate = pki.new_ca(f"local {self.directory}")
        for party in contract.PARTY_NAMES:
            key, certificate = pki.issue(ca_key, ca_certificate, party)
            pki.write_tls_dir(self.tls_dir(party), ca_certificate, key, certificate)
        self.ca_certificate = ca_certificate

    def write_access(self, serving_url: str) -> Path:
        """The clients' access file for this cluster's serving."""
        access = {"serving": serving_url, **{name: self.ingress_url(name) for name in contract.SHARE_HOLDERS},
                  "ca": (self.tls_dir("serve") / contract.TLS_CA).read_text()}
        self.access_path.write_text(json.dumps(access, indent=2) + "\n")
        return self.access_path

    def down(self) -> list[str]:
        stopped = [name for name, process in self.players.items() if process.stop()]
        if stopped:
            log.info("stopped local players %s", ", ".join(stopped))
        network = self.network
        if network:
            network.down()
            self._save_layout()
        return stopped

    def status(self) -> dict:
        players = self.hostmap.players if self.hostmap_path.exists() else {}
        return {
            name: {
                "pid": process.pid,
                "address": players.get(name),
                "listening": bool(players) and _listening(players[name]),
                "log": str(process.log_file),
            }
            for name, process in self.players.items()
        }

    @staticmethod
    def manual_commands(hosts: list[str]) -> str:
        """Players on three machines and the controllers (share, serve) on a fourth, over the TLS mesh."""
        players, controller = hosts[:3], hosts[3]
        mesh = {name: f"{host}:{contract.MESH_PORT}" for name, host in zip(hostmaps.PLAYER_NAMES, players)}
        mesh.update({name: f"{controller}:{contract.MESH_PORT + 1 + index}" for index, name in enumerate(contract.CONTROLLER_NAMES)})
        hostmap = hostmaps.validate({**{name: f"127.0.0.1:{port}" for name, port in contract.MESH_TF_PORTS.items()}, "mesh": mesh})
        lines = [
            "1. Make the certificates once (a CA and one certificate per party) and copy certs/PARTY/ to that",
            "   party's host only:  privatemodel certs --out certs",
            "2. Save this as hostmap.json on every host:",
            json.dumps(hostmap.to_dict(), indent=2),
            "3. Start the players (each reachable by the others and the controller host on its mesh port only):",
        ]
        for name, host in zip(hostmaps.PLAYER_NAMES, players):
            ingress = f" --ingress-port {contract.INGRESS_PORT}" if name in contract.SHARE_HOLDERS else ""
            lines.append(f"   on {host}:  privatemodel player {name} --config hostmap.json --tls-dir certs/{name}{ingress}")
        lines += [
            f"4. On {controller}:  privatemodel share --model model.h5 --config hostmap.json --tls-dir certs/share",
            f"   then:  privatemodel serve --config hostmap.json --tls-dir certs/serve --port {contract.SERVING_PORT}",
            "5. Clients need an access file: {\"serving\": \"https://%s:%d\", \"server0\": \"https://%s:%d\", "
            "\"server1\": \"https://%s:%d\", \"ca\": \"<certs/ca.crt>\"}"
            % (controller, contract.SERVING_PORT, players[0], contract.INGRESS_PORT, players[1], contract.INGRESS_PORT),
        ]
        return "\n".join(lines)


class LocalServing:
    """`privatemodel serve` as a child process; `start` returns once its endpoint is ready."""

    def __init__(self, cluster: LocalCluster, port: int | None = None):
        self.cluster = cluster
        network = cluster.network
        self.host = network.hosts["serve"] if network else "127.0.0.1"
        self.port = port or (contract.SERVING_PORT if network else free_port())
        self.process = LocalProcess("serve", cluster.directory)
        self.url = f"https://{self.host}:{self.port}"

    def start(self, num_requests=None, extra_args=()) -> str:
        self.process.stop()
        host = "0.0.0.0" if self.cluster.network else self.host
        args = ["serve", "--config", str(self.cluster.hostmap_path), "--port", str(self.port), "--host", host, *extra_args]
        if num_requests is not None:
            args += ["--num-requests", str(num_requests)]
        started = time.monotonic()
        self.process.start(self.cluster.command("serve", *args))
        ca_file = self.cluster.tls_dir("serve") / contract.TLS_CA
        _wait_until(lambda: _healthy(self.url, ca_file), lambda: self.process.pid is None, f"serving at {self.url}", self.process)
        log.info("serving ready at %s in %.1f s", self.url, time.monotonic() - started)
        self.cluster.write_access(self.url)
        return self.url

    def wait(self, timeout: float = 60.0) -> int | None:
        """Wait for serve to exit by itself (after its N requests): its exit code, or None."""
        return self.process.wait(timeout)

    def stop(self) -> None:
        self.process.stop()


def _wait_until(is_ready, has_died, what, process, timeout=READY_TIMEOUT):
    deadline = time.monotonic() + timeout
    while not is_ready():
        if has_died():
            raise RuntimeError(f"{what} exited before it was ready; last lines of {process.log_file}:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not ready after {timeout:.0f} s; last lines of {process.log_file}:\n{process.log_tail()}")
        time.sleep(0.1)


def _listening(address: str) -> bool:
    try:
        with socket.create_connection(hostmaps.parse_address(address), timeout=0.5):
            return True
    except OSError:
        return False


def _healthy(url: str, ca_file: Path) -> bool:
    context = ssl.create_default_context(cafile=str(ca_file))
    context.check_hostname = False  # the certificate names the party ("serve"), not 127.0.0.1; the CA is checked
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1.0, context=context) as response:
            return response.status == 200
    except OSError:
        return False


def _is_ours(pid: int) -> bool:
    """A recorded PID may have been reused by an unrelated process since; never signal that one."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"privatemodel" in cmdline.read()
    except OSError:
        return False
