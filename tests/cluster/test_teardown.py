"""cluster-down leaves nothing of the cluster on the machine, is idempotent, and the cluster comes
back (binaries cached) within a minute. Runs last in tests/cluster (file order) and leaves the
cluster up for the tests after it."""

import os
import re
import subprocess
from pathlib import Path

from cluster.harness import HERE, script


def config(name: str) -> str:
    return subprocess.run(["bash", "-c", f'. "{HERE}/config.sh"; echo "${name}"'],
                          check=True, capture_output=True, text=True).stdout.strip()


def leftovers(bridge_is_ours: bool) -> dict:
    """What of the cluster is still on the machine. The bridge counts only if the cluster made it:
    one that was there before (another dockerd's, or another state dir's cluster) stays."""
    state, binaries, bridge = config("PM_STATE"), config("K8S_BIN"), config("BRIDGE")
    found = {}

    procs = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if state in cmdline or binaries in cmdline:
                procs.append(f"{entry.name}: {cmdline[:120]}")
    for procs_file in Path("/sys/fs/cgroup").glob("*/*/**/cgroup.procs"):
        if procs_file.parts[5] in ("kubepods", "docker") and procs_file.read_text().strip():
            procs.append(f"in {procs_file.parent}: {procs_file.read_text().split()}")
    found["processes"] = procs
    found["pid files"] = [str(p) for p in Path(state, "pids").glob("*.pid")]

    rules = []
    tools = ["iptables-save", "ip6tables-save"]  # nft, what the cluster uses
    for legacy, names in (("iptables-legacy-save", "/proc/net/ip_tables_names"),
                          ("ip6tables-legacy-save", "/proc/net/ip6_tables_names")):
        if os.path.exists(names) and Path(names).read_text().strip():
            tools.append(legacy)  # only when legacy tables exist: listing them never makes one
    for tool in tools:
        try:
            out = subprocess.run([tool], capture_output=True, text=True).stdout
        except FileNotFoundError:
            continue
        rules += [f"{tool}: {line}" for line in out.splitlines()
                  if re.search(rf"KUBE-|DOCKER|\b{bridge}\b", line)]
    found["iptables"] = rules

    links = subprocess.run(["ip", "-o", "link"], check=True, capture_output=True, text=True).stdout
    ours = rf"\d+: ({bridge}|veth)" if bridge_is_ours else r"\d+: veth"
    found["interfaces"] = [line.split(":")[1].strip() for line in links.splitlines() if re.match(ours, line)]

    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    found["mounts"] = [m.split()[4] for m in mounts if m.split()[4].startswith(state)]
    return {what: items for what, items in found.items() if items}


def test_cluster_down_leaves_nothing_then_up_again(kubeconfig, local_cluster, core):
    assert core.list_node().items  # the cluster runs, with the earlier tests' pods gone or going

    bridge_is_ours = Path(config("PM_STATE"), "made-bridge").exists()  # docker-up's record
    took = script("down.sh")
    assert leftovers(bridge_is_ours) == {}
    script("down.sh")  # idempotent
    assert leftovers(bridge_is_ours) == {}
    print(f"\ncluster-down: {took:.1f}s")

    took = script("up.sh")
    print(f"cluster-up (cached): {took:.1f}s")
    assert took < 60
    nodes = core.list_node().items
    assert [c.status for c in nodes[0].status.conditions if c.type == "Ready"] == ["True"]
    assert os.path.exists(kubeconfig)
