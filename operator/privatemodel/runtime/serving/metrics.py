"""Serving's Prometheus metrics, at GET /metrics on its HTTPS port (next to /status).

Aggregates only (counts and durations): no request id, query or answer appears. Each endpoint has
its own registry, so several can run in one process (tests). Names: privatemodel_serving_ prefix,
seconds, _total for counters; the chart's alerts and dashboard read them.
"""
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

# The text format every Prometheus version reads (the metric names need none of 1.0.0's escaping).
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
# A batch-1 prediction takes some 50 ms on two cores; a batch of 64, seconds.
_BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
# Queueing: the batching wait is a few ms; under load a request also waits for the step in flight.
_QUEUE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10, 30, 120)
# Batch sizes: the row buckets are serving's graphs (powers of two up to the largest batch, 64).
_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


class Outcome:
    ANSWERED = "answered"
    REFUSED = "refused"  # the client's fault (4xx): a bad or unstaged request, or serving refuses more
    FAILED = "failed"  # serving's fault (5xx): a lost player, stale shares, an error


class ServingMetrics:
    def __init__(self, queue_depth: Callable[[], int]):
        self.registry = CollectorRegistry()
        self.requests = Counter("privatemodel_serving_requests_total", "Prediction requests, by outcome.",
                                ["outcome"], registry=self.registry)
        for outcome in (Outcome.ANSWERED, Outcome.REFUSED, Outcome.FAILED):
            self.requests.labels(outcome)
        self.request_seconds = Histogram("privatemodel_serving_request_duration_seconds",
                                         "From a prediction request's arrival to its reply, queueing included.",
                                         buckets=_BUCKETS, registry=self.registry)
        self.step_seconds = Histogram("privatemodel_serving_mpc_step_duration_seconds",
                                      "One batch's run on the players (its check and the SecureNN graphs), "
                                      "for all the requests coalesced into it.",
                                      buckets=_BUCKETS, registry=self.registry)
        self.queueing_seconds = Histogram("privatemodel_serving_queueing_delay_seconds",
                                          "From a prediction request's arrival to the start of the batch it runs in.",
                                          buckets=_QUEUE_BUCKETS, registry=self.registry)
        self.batch_requests = Histogram("privatemodel_serving_batch_requests", "Requests coalesced into one MPC step.",
                                        buckets=_SIZE_BUCKETS, registry=self.registry)
        self.batch_rows = Histogram("privatemodel_serving_batch_rows", "Examples (rows, before padding) in one MPC step.",
                                    buckets=_SIZE_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("privatemodel_serving_queue_depth", "Requests waiting for the worker.",
                                 registry=self.registry)
        self.queue_depth.set_function(queue_depth)

    def observe_request(self, status: int, seconds: float) -> None:
        outcome = Outcome.ANSWERED if status < 400 else Outcome.REFUSED if status < 500 else Outcome.FAILED
        self.requests.labels(outcome).inc()
        self.request_seconds.observe(seconds)

    def observe_batch(self, jobs, started: float) -> None:
        """A batch starts at `started` (monotonic): its size, and how long each of its requests waited."""
        self.batch_requests.observe(len(jobs))
        self.batch_rows.observe(sum(job.count for job in jobs))
        for job in jobs:
            self.queueing_seconds.observe(started - job.arrived)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
