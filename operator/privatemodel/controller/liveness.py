"""Is the operator still reconciling every PrivateModel that exists? The liveness probe's answer.

The reconcile timer records each tick; the probe lists the PrivateModels from the API server on
a fresh request and reports those the operator has not reconciled at their current generation for
longer than a bound: a model created or edited after the operator went blind (a watch stream that
died without a close, a timer that never started or hangs) shows up here and nowhere else.
"""
import threading
from collections.abc import Iterable


class Sightings:
    """Per PrivateModel uid, the last reconcile tick; per (uid, generation) the probe found not
    reconciled, when it first did. Ticks come from handler threads, checks from the probe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ticks: dict[str, tuple[float, int]] = {}
        self._missed_since: dict[tuple[str, int], float] = {}

    def reconciled(self, uid: str, generation: int, now: float) -> None:
        with self._lock:
            self._ticks[uid] = (now, generation)

    def overdue(self, models: Iterable[dict], now: float, bound: float) -> list[str]:
        """`namespace/name` of each listed model (not being deleted) that has gone unreconciled
        at its current generation for more than `bound` seconds of this operator's time."""
        overdue, missed_since, ticks = [], {}, {}
        with self._lock:
            for model in models:
                meta = model["metadata"]
                if meta.get("deletionTimestamp"):
                    continue  # timers stop at deletion; the delete handler takes over
                uid, generation = meta["uid"], meta.get("generation", 1)
                tick = self._ticks.get(uid)
                if tick is not None:
                    ticks[uid] = tick
                if tick is not None and tick[1] >= generation:
                    since = tick[0]  # reconciled at this generation: overdue only when ticks stop
                else:  # not yet: count from the first probe that found it so
                    since = missed_since[uid, generation] = self._missed_since.get((uid, generation), now)
                if now - since > bound:
                    overdue.append(f"{meta.get('namespace')}/{meta['name']}")
            # Only models that still exist are remembered.
            self._ticks, self._missed_since = ticks, missed_since
        return overdue
