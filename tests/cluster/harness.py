"""How tests get a Kubernetes cluster (for tests/cluster and tests/e2e alike).

    from cluster.harness import ensure_cluster      # pytest's pythonpath includes tests/
    kubeconfig = ensure_cluster()

By default this brings up the project's own single-node cluster (tests/cluster/up.sh: builds
Kubernetes once per machine, ~6-13 min; then ~30 s; a no-op when it already runs) and returns
build/cluster/kubeconfig. With PRIVATEMODEL_TEST_CLUSTER=external it starts nothing and returns
$KUBECONFIG: that is how `make e2e-kind` runs the same tests on a kind cluster.
"""

import os
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
KUBECONFIG = REPO / "build" / "cluster" / "kubeconfig"


def external() -> bool:
    return os.environ.get("PRIVATEMODEL_TEST_CLUSTER", "") == "external"


def script(name: str, *args: str, timeout: float = 3600) -> float:
    """Run tests/cluster/NAME with its output on our stdout/stderr; return the seconds taken."""
    start = time.monotonic()
    subprocess.run(["bash", str(HERE / name), *args], check=True, timeout=timeout)
    return time.monotonic() - start


def ensure_cluster() -> Path:
    if external():
        path = os.environ.get("KUBECONFIG")
        if not path:
            raise RuntimeError("PRIVATEMODEL_TEST_CLUSTER=external needs KUBECONFIG")
        return Path(path)
    script("up.sh")
    return KUBECONFIG


def ensure_images(*names: str) -> None:
    """Build images/NAME/Dockerfile for the local cluster (external clusters load their own)."""
    if not external():
        script("images.sh", *names)
