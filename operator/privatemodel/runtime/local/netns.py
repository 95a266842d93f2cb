"""Each party on a host of its own, on one machine: a network namespace per party (root only).

This is how the TLS mesh runs without Kubernetes or several machines: every party gets its own
loopback (so the hostmap's 127.0.0.1 ports are its own TensorFlow server and its own tunnels, as
in a pod) and one address on a private bridge, reached by nothing outside this machine. Used by
`LocalCluster(isolated=True)`: the benchmark of the mesh and the tests that attack it.
"""
import logging
import secrets
import subprocess

from privatemodel import contract

log = logging.getLogger(__name__)

SUBNET_PREFIX = "10.213"  # 10.213.N.0/24, N random per network; never routed off this machine


class NetnsError(RuntimeError):
    pass


class PartyNetwork:
    def __init__(self, tag=None):
        self.tag = tag or secrets.token_hex(3)
        self.bridge = f"pmb{self.tag}"
        self.link_prefix = f"pmv{self.tag}"  # the host ends of the parties' links
        self.subnet = f"{SUBNET_PREFIX}.{int(self.tag, 16) % 250 + 1}"
        self.hosts = {name: f"{self.subnet}.{10 + index}" for index, name in enumerate(contract.PARTY_NAMES + ("attacker",))}
        # Where a kernel ignores nf_call_iptables, bridged frames cross iptables' FORWARD chain,
        # which docker and kube-proxy set to DROP.
        self._forward_rule = ["FORWARD", "-i", self.bridge, "-o", self.bridge, "-j", "ACCEPT"]

    def namespace(self, name: str) -> str:
        return f"pm{self.tag}-{name}"

    def wrap(self, name: str, command: list) -> list:
        """`command` run inside `name`'s namespace."""
        return ["ip", "netns", "exec", self.namespace(name), *command]

    def up(self) -> "PartyNetwork":
        try:
            # Kept out of iptables (nf_call_iptables 0): party-to-party frames skip the host's
            # FORWARD rules (docker's and kube-proxy's), as packets between hosts would.
            _run("ip", "link", "add", self.bridge, "type", "bridge", "nf_call_iptables", "0")
            _run("ip", "addr", "add", f"{self.subnet}.1/24", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
            _run("iptables", "-I", *self._forward_rule)
            for index, (name, address) in enumerate(self.hosts.items()):
                namespace, veth = self.namespace(name), f"{self.link_prefix}{index}"
                _run("ip", "netns", "add", namespace)
                _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", namespace)
                _run("ip", "link", "set", veth, "master", self.bridge, "up")
                _run("ip", "-n", namespace, "addr", "add", f"{address}/24", "dev", "eth0")
                _run("ip", "-n", namespace, "link", "set", "eth0", "up")
                _run("ip", "-n", namespace, "link", "set", "lo", "up")
        except NetnsError:
            self.down()
            raise
        log.info("party network %s up: %s", self.bridge, self.hosts)
        return self

    def down(self) -> None:
        for name in self.hosts:
            _run("ip", "netns", "del", self.namespace(name), check=False)
        _run("ip", "link", "del", self.bridge, check=False)
        while _run("iptables", "-D", *self._forward_rule, check=False):
            pass


def _run(*command, check=True) -> bool:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0 and check:
        raise NetnsError(f"{' '.join(command)} failed: {result.stderr.strip()} (network namespaces need root and iproute2)")
    return result.returncode == 0
