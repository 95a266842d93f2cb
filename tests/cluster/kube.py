"""Small helpers for the cluster tests: waiting, exec in a pod, manifests of test pods."""

import time

from kubernetes.stream import stream

TESTBOX = "privatemodel/testbox:dev"  # images/testbox, built by `make images`


def wait_until(check, timeout: float, what: str, interval: float = 0.5):
    """Call check() until it returns something truthy (returned) or timeout (AssertionError
    with the last value or exception)."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - report the last failure if time runs out
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f}s (last: {last!r})")
        time.sleep(interval)


def exec_pod(core, namespace: str, pod: str, script: str, timeout: float = 60):
    """Run `sh -c script` in the pod's first container: (exit code, stdout, stderr)."""
    resp = stream(core.connect_get_namespaced_pod_exec, pod, namespace,
                  command=["sh", "-c", script], stdout=True, stderr=True, stdin=False,
                  tty=False, _preload_content=False)
    out, err = [], []
    deadline = time.monotonic() + timeout
    while resp.is_open() and time.monotonic() < deadline:
        resp.update(timeout=1)
        if resp.peek_stdout():
            out.append(resp.read_stdout())
        if resp.peek_stderr():
            err.append(resp.read_stderr())
    if resp.is_open():
        resp.close()
        raise AssertionError(f"exec in {namespace}/{pod} did not finish in {timeout}s: {script}")
    return resp.returncode, "".join(out), "".join(err)


def box_container(command: str, name: str = "main", **extra) -> dict:
    return {"name": name, "image": TESTBOX, "imagePullPolicy": "Never",
            "command": ["sh", "-c", command], **extra}


def pod_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status.conditions or []))


def pod_log(core, namespace: str, pod: str) -> str:
    # The raw response: this client version returns some logs as the repr of bytes otherwise.
    return core.read_namespaced_pod_log(pod, namespace, _preload_content=False).data.decode()
