"""The operator's Prometheus metrics, served on their own port (chart value operator.metricsPort).

Names follow Prometheus conventions: a privatemodel_operator_ prefix, base units (seconds),
_total for counters. Alerts and the dashboard in charts/privatemodel read these names.
"""
from collections.abc import Iterable

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from privatemodel.controller.consts import Phase

PHASES = (Phase.PENDING, Phase.SHARING, Phase.STARTING, Phase.SERVING, Phase.COMPLETED, Phase.FAILED)


class Result:
    OK = "ok"
    INVALID_SPEC = "invalid_spec"
    ERROR = "error"  # an exception: kopf retries the tick


RECONCILES = Counter("privatemodel_operator_reconciles_total", "Reconcile ticks of PrivateModels, by result.",
                     ["result"])
RECONCILE_SECONDS = Histogram("privatemodel_operator_reconcile_duration_seconds", "Time one reconcile tick takes.",
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
MODELS = Gauge("privatemodel_operator_models", "PrivateModels the operator handles, by phase.", ["phase"])
API_REQUESTS = Counter("privatemodel_operator_api_requests_total",
                       "Kubernetes API requests made by reconcile ticks and teardown (not kopf's own), by verb.",
                       ["verb"])
DRIFT_REVERTED = Counter("privatemodel_operator_drift_reverted_total",
                         "Children patched back after a hand edit, by kind.", ["kind"])


def serve(port: int) -> None:
    start_http_server(port)
    for phase in PHASES:  # every phase from the start, so that a query for Failed finds 0, not nothing
        MODELS.labels(phase)
    for result in (Result.OK, Result.INVALID_SPEC, Result.ERROR):
        RECONCILES.labels(result)


class PhaseBook:
    """Each PrivateModel's last phase, by UID: the models-by-phase gauge is counted from it."""

    def __init__(self):
        self._phases: dict[str, str] = {}

    def record(self, uid: str, phase: str | None) -> None:
        if phase is None:
            self._phases.pop(uid, None)
        else:
            self._phases[uid] = phase
        for name, count in count_by_phase(self._phases.values()).items():
            MODELS.labels(name).set(count)


def count_by_phase(phases: Iterable[str]) -> dict[str, int]:
    counts = dict.fromkeys(PHASES, 0)
    for phase in phases:
        counts[phase] = counts.get(phase, 0) + 1
    return counts
