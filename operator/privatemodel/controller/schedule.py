"""When a PrivateModel needs a full reconcile tick, so that a model at rest costs the API server
almost nothing: a tick reads and applies some twenty children.

A full tick runs when one of the model's children changed (the watches of owned kinds touch it),
when its spec changed, while it converges (any phase but Serving, Completed or Failed), and at
least once every resync period, which catches anything the watches missed. A Serving model is
otherwise only asked for serving's status over HTTPS, not the API server.
"""
import threading

from privatemodel.controller.consts import Phase

AT_REST = frozenset({Phase.SERVING, Phase.COMPLETED, Phase.FAILED})


class Schedule:
    def __init__(self, resync_seconds: float):
        self.resync_seconds = resync_seconds
        self._lock = threading.Lock()  # kopf runs sync handlers on a thread pool
        self._touched: set[tuple[str, str]] = set()
        self._last_full: dict[tuple[str, str], float] = {}

    def touch(self, namespace: str, name: str) -> None:
        """A child of this model changed."""
        with self._lock:
            self._touched.add((namespace, name))

    def take(self, namespace: str, name: str, status: dict, generation: int | None, now: float) -> bool:
        """Whether this tick must be a full one; if so, the model counts as reconciled from now
        (a child that changes during the tick touches it again, for the next one)."""
        key = (namespace, name)
        with self._lock:
            due = (key in self._touched
                   or status.get("phase") not in AT_REST
                   or status.get("observedGeneration") != generation
                   or now - self._last_full.get(key, float("-inf")) >= self.resync_seconds)
            if due:
                self._touched.discard(key)
                self._last_full[key] = now
            return due

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            self._touched.discard((namespace, name))
            self._last_full.pop((namespace, name), None)
