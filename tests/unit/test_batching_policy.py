"""Serving's batching policy: which queued requests the next MPC step takes, and how long it waits."""
import threading
import time

from privatemodel.runtime.serving.batching import Job, RequestQueue, batch_length


def test_takes_the_longest_prefix_that_fits_in_arrival_order():
    assert batch_length([1, 1, 1], max_rows=64, max_requests=64) == 3
    assert batch_length([30, 30, 10], max_rows=64, max_requests=64) == 2
    # The third does not fit: the fourth, which would, does not overtake it.
    assert batch_length([30, 30, 10, 1], max_rows=64, max_requests=64) == 2
    assert batch_length([64, 1], max_rows=64, max_requests=64) == 1
    assert batch_length([1, 1, 1, 1], max_rows=64, max_requests=2) == 2  # serving has two answers left to give
    assert batch_length([], max_rows=64, max_requests=64) == 0


def queue_of(*counts):
    jobs = RequestQueue()
    for count in counts:
        jobs.put(Job(f"{count}", count))
    return jobs


def test_zero_wait_takes_only_what_is_queued():
    jobs = queue_of(1, 2)
    assert [job.count for job in jobs.take(max_rows=64, max_requests=64, wait=0)] == [1, 2]
    assert len(jobs) == 0


def test_waits_for_more_until_the_batch_is_full():
    jobs = queue_of(1)
    threading.Timer(0.1, lambda: jobs.put(Job("late", 3))).start()
    assert [job.count for job in jobs.take(max_rows=64, max_requests=2, wait=30.0)] == [1, 3]


def test_the_wait_counts_from_when_the_worker_is_free_if_the_oldest_came_earlier():
    """Under load the oldest request arrived during the last step: clients still fetching their
    answers then are waited for all the same."""
    jobs = RequestQueue()
    jobs.put(Job("waited through the last step", 1, arrived=time.monotonic() - 60))
    threading.Timer(0.1, lambda: jobs.put(Job("late", 1))).start()
    assert [job.request_id for job in jobs.take(max_rows=64, max_requests=2, wait=30.0)] == ["waited through the last step", "late"]


def test_a_full_batch_goes_without_waiting():
    jobs = queue_of(32, 32)
    taken = []
    taker = threading.Thread(target=lambda: taken.append(jobs.take(max_rows=64, max_requests=64, wait=600.0)), daemon=True)
    taker.start()
    taker.join(30)
    assert [job.count for job in taken[0]] == [32, 32]


def test_a_request_that_does_not_fit_stays_first_in_line():
    jobs = queue_of(40, 40, 1)
    assert [job.count for job in jobs.take(max_rows=64, max_requests=64, wait=30.0)] == [40]
    assert [job.count for job in jobs.take(max_rows=64, max_requests=64, wait=0)] == [40, 1]


def test_closed_queue_hands_out_what_is_left_then_none():
    jobs = queue_of(1)
    jobs.close()
    assert [job.count for job in jobs.take(max_rows=64, max_requests=64, wait=30.0)] == [1]
    assert jobs.take(max_rows=64, max_requests=64, wait=30.0) is None
