"""Pure readings of children as the API server returns them: who is ready, how a Job ended.

Each takes plain dicts (camelCase, as in manifests) and makes no API calls.
"""
import re
from dataclasses import dataclass

from privatemodel import contract
from privatemodel.controller.naming import player_pod


@dataclass(frozen=True)
class Players:
    """The live player pods in contract.PLAYER_NAMES order (None: no such pod right now)."""

    pods: tuple[dict | None, ...]

    @property
    def ready_count(self) -> int:
        return sum(1 for pod in self.pods if pod is not None and is_pod_ready(pod))

    @property
    def all_ready(self) -> bool:
        return self.ready_count == len(contract.PLAYER_NAMES)

    @property
    def uids(self) -> list[str] | None:
        """Pod UIDs in player order when all three pods exist; their shares live and die with them."""
        if any(pod is None for pod in self.pods):
            return None
        return [pod["metadata"]["uid"] for pod in self.pods]

    @property
    def summary(self) -> str:
        return f"{self.ready_count}/{len(contract.PLAYER_NAMES)}"


def players_from_pods(model_name: str, pods: list[dict]) -> Players:
    """Each player's pod, by name (labels alone could be anyone's). Pods being deleted are already
    gone as far as their shares are concerned."""
    live = {pod["metadata"]["name"]: pod for pod in pods if not pod["metadata"].get("deletionTimestamp")}
    return Players(tuple(live.get(player_pod(model_name, player)) for player in contract.PLAYER_NAMES))


def is_pod_ready(pod: dict) -> bool:
    conditions = pod.get("status", {}).get("conditions") or ()
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class JobOutcome:
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


def job_outcome(job: dict) -> str:
    for condition in job.get("status", {}).get("conditions") or ():
        if condition.get("status") == "True" and condition.get("type") == "Complete":
            return JobOutcome.SUCCEEDED
        if condition.get("status") == "True" and condition.get("type") == "Failed":
            return JobOutcome.FAILED
    return JobOutcome.RUNNING


def job_failure_message(job: dict, pods: list[dict]) -> str:
    """Why a Job failed: its newest pod's termination message (what `share` wrote), else the Job's."""
    for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""), reverse=True):
        for status in pod.get("status", {}).get("containerStatuses") or ():
            terminated = (status.get("state") or {}).get("terminated") or {}
            message = (terminated.get("message") or "").strip()
            if message:
                return message.splitlines()[-1]  # a crash leaves the log's tail: its last line says most
    failed = next((c for c in job.get("status", {}).get("conditions") or () if c.get("type") == "Failed"), {})
    return failed.get("message") or failed.get("reason") or "the sharing Job failed"


def waiting_reasons(pods: list[dict]) -> list[str]:
    """"POD: REASON" for each container that waits to start (e.g. a model Secret that does not exist)."""
    reasons = []
    for pod in pods:
        for status in pod.get("status", {}).get("containerStatuses") or ():
            waiting = (status.get("state") or {}).get("waiting")
            if waiting:
                reasons.append(f"{pod['metadata']['name']}: {waiting.get('reason', 'waiting')}")
        if pod.get("status", {}).get("phase") == "Pending" and not pod.get("status", {}).get("containerStatuses"):
            reasons.append(f"{pod['metadata']['name']}: Pending")
    return reasons


def is_deployment_ready(deployment: dict) -> bool:
    """The current template's pod is ready (not an old one still running)."""
    status = deployment.get("status", {})
    current = status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
    return current and status.get("updatedReplicas", 0) >= 1 and status.get("readyReplicas", 0) >= 1


def owned_by(objects: list[dict], owner_uid: str) -> list[dict]:
    """The objects whose owner references name `owner_uid`: a label alone could be anyone's."""
    return [obj for obj in objects
            if any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or ())]


# What the kubelet and the scheduler say when a pod's volume source does not exist, e.g.
#   MountVolume.SetUp failed for volume "model" : secret "mnist-model" not found
#   MountVolume.SetUp failed for volume "model" : references non-existent secret key: model.h5
#   0/1 nodes are available: 1 persistentvolumeclaim "models" not found.
_MISSING_SOURCE = re.compile(
    r'((?:secret|configmap|persistentvolumeclaim) "[^"]+" not found'
    r'|references non-existent (?:secret|config) key: [^\s,]+)')


def missing_sources(events: list[dict]) -> list[str]:
    """What a pod's events say does not exist among its volumes' sources, oldest first, once each."""
    found: list[str] = []
    for event in sorted(events, key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or ""):
        if event.get("reason") not in ("FailedMount", "FailedScheduling"):
            continue
        match = _MISSING_SOURCE.search(event.get("message") or "")
        if match and match.group(1) not in found:
            found.append(match.group(1))
    return found
