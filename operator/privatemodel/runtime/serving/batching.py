"""Dynamic batching: concurrent requests coalesced into one MPC step, as Triton and KServe do.

A SecureNN step costs many network round trips whatever its batch (on two cores some 30 ms, plus
some 9 ms a row), so a batch of eight costs far less than eight steps of one. The worker takes the
oldest request, then every request queued behind it (in arrival order) while their rows fit.

It waits for more only while more are expected: as many as were in flight when the last step ended
(that step's requests, whose clients may ask again at once, and those queued), and at most until
`wait` has passed since the oldest arrived or since the worker was free, whichever is later. So no
request is delayed more than `wait` beyond when it could have started; a lone client is never
delayed; and concurrent clients busy fetching their answers while the last step ran are gathered
into the next (counted from the oldest arrival alone, the wait would already be over under load,
and steps would alternate between two halves of the clients).
"""
import itertools
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field

# Measured with 8 concurrent batch-1 clients on two cores (README, Performance): long enough for
# the clients just answered to fetch their answer shares and post again.
DEFAULT_BATCH_WAIT_SECONDS = 0.025


@dataclass
class Job:
    request_id: str
    count: int
    future: Future = field(default_factory=Future)
    arrived: float = field(default_factory=time.monotonic)


def batch_length(counts, max_rows: int, max_requests: int) -> int:
    """How many of the queued requests (their counts, oldest first) the next step takes: the
    longest prefix whose rows fit max_rows, at most max_requests. A request that does not fit ends
    the batch (none is overtaken: arrival order is kept)."""
    taken = rows = 0
    for count in counts:
        if taken == max_requests or rows + count > max_rows:
            break
        taken += 1
        rows += count
    return taken


class RequestQueue:
    """Jobs in arrival order, taken a batch at a time by the one worker."""

    def __init__(self):
        self._jobs: deque[Job] = deque()
        self._changed = threading.Condition()
        self._closed = False
        self._last_batch = 0

    def __len__(self) -> int:
        return len(self._jobs)

    def put(self, job: Job) -> None:
        with self._changed:
            self._jobs.append(job)
            self._changed.notify_all()

    def close(self) -> None:
        """No job comes any more: `take` hands out the queued ones without waiting, then None."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def drain(self) -> list[Job]:
        with self._changed:
            jobs = list(self._jobs)
            self._jobs.clear()
            return jobs

    def take(self, max_rows: int, max_requests: int, wait: float, idle: float | None = None) -> list[Job] | None:
        """The next batch (blocks for its first job), or None once closed and empty; [] if no job
        came within `idle` seconds (None: wait as long as it takes). The worker calls this when it
        is free (its last step ended): the wait counts from then, or from the oldest job's arrival."""
        free_since = time.monotonic()
        with self._changed:
            expected = self._last_batch + len(self._jobs)
            if not self._changed.wait_for(lambda: self._jobs or self._closed, idle):
                return []
            if not self._jobs:
                return None
            deadline = max(self._jobs[0].arrived, free_since) + wait
            while True:
                length = batch_length((job.count for job in self._jobs), max_rows, max_requests)
                rows = sum(job.count for job in itertools.islice(self._jobs, length))
                full = length < len(self._jobs) or length == max_requests or rows == max_rows
                remaining = deadline - time.monotonic()
                if full or length >= expected or remaining <= 0 or self._closed:
                    self._last_batch = length
                    return [self._jobs.popleft() for _ in range(length)]
                self._changed.wait(remaining)
