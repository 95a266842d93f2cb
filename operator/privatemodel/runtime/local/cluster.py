"""Players and serving as processes on this machine, for development, demos and tests.

Everything a local cluster starts is recorded in its directory (hostmap, PIDs, one log each), so
`down` stops exactly those processes and nothing else.
"""
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

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
    """Three players on localhost. `up` is idempotent; `down` stops only what `up` started."""

    def __init__(self, directory=None):
        self.directory = Path(directory) if directory else default_dir()
        self.hostmap_path = self.directory / "hostmap.json"
        self.players = {name: LocalProcess(name, self.directory) for name in hostmaps.PLAYER_NAMES}

    @property
    def hostmap(self) -> dict:
        return hostmaps.load(self.hostmap_path)

    def state_dir(self, player: str) -> Path:
        return self.directory / "state" / player

    def up(self) -> dict:
        self.directory.mkdir(parents=True, exist_ok=True)
        running = {name: p.pid for name, p in self.players.items()}
        if all(running.values()):
            log.info("local players already running: %s", running)
            return self.hostmap
        self.down()
        hostmap = {name: f"127.0.0.1:{free_port()}" for name in hostmaps.PLAYER_NAMES}
        hostmaps.save(self.hostmap_path, hostmap)
        started = time.monotonic()
        for name, process in self.players.items():
            process.start(privatemodel_command("player", name, "--config", str(self.hostmap_path), "--state-dir", str(self.state_dir(name))))
        for name, process in self.players.items():
            _wait_until(
                lambda: _listening(hostmap[name]),
                lambda: process.pid is None,
                f"player {name} ({hostmap[name]})",
                process,
            )
        log.info("local players up in %.1f s: %s (logs in %s)", time.monotonic() - started, hostmap, self.directory)
        return hostmap

    def down(self) -> list[str]:
        stopped = [name for name, process in self.players.items() if process.stop()]
        if stopped:
            log.info("stopped local players %s", ", ".join(stopped))
        return stopped

    def status(self) -> dict:
        hostmap = self.hostmap if self.hostmap_path.exists() else {}
        return {
            name: {
                "pid": process.pid,
                "address": hostmap.get(name),
                "listening": bool(hostmap) and _listening(hostmap[name]),
                "log": str(process.log_file),
            }
            for name, process in self.players.items()
        }

    def manual_commands(self, hosts: list[str], port: int = 4440) -> str:
        """For players on several machines: the hostmap and the exact command to run on each."""
        hostmap = {name: f"{host}:{port}" for name, host in zip(hostmaps.PLAYER_NAMES, hosts)}
        lines = ["Save this as hostmap.json on every host and on the machines that share, serve and predict:", json.dumps(hostmap, indent=2), ""]
        for name, host in zip(hostmaps.PLAYER_NAMES, hosts):
            lines.append(f"on {host}:  privatemodel player {name} --config hostmap.json --state-dir ./privatemodel-{name}")
        return "\n".join(lines)


class LocalServing:
    """`privatemodel serve` as a child process; `start` returns once its endpoint is ready."""

    def __init__(self, cluster: LocalCluster, port: int | None = None):
        self.cluster = cluster
        self.port = port or free_port()
        self.process = LocalProcess("serve", cluster.directory)
        self.url = f"http://127.0.0.1:{self.port}"

    def start(self, num_requests=None, extra_args=()) -> str:
        self.process.stop()
        args = ["serve", "--config", str(self.cluster.hostmap_path), "--port", str(self.port), "--host", "127.0.0.1", *extra_args]
        if num_requests is not None:
            args += ["--num-requests", str(num_requests)]
        started = time.monotonic()
        self.process.start(privatemodel_command(*args))
        _wait_until(lambda: _healthy(self.url), lambda: self.process.pid is None, f"serving at {self.url}", self.process)
        log.info("serving ready at %s in %.1f s", self.url, time.monotonic() - started)
        self.url_file(self.cluster).write_text(self.url)
        return self.url

    @staticmethod
    def url_file(cluster: LocalCluster) -> Path:
        """Where clients in other processes find the endpoint of this cluster's serving."""
        return cluster.directory / "serve.url"

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


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1.0) as response:
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
