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


def take_within(jobs, seconds, **limits):
    """take() in a thread: its batch, or None if it is still waiting after `seconds`."""
    taken = []
    taker = threading.Thread(target=lambda: taken.append(jobs.take(**limits)), daemon=True)
    taker.start()
    taker.join(seconds)
    return taken[0] if taken else None


def test_a_lone_client_never_waits():
    jobs = queue_of(1)
    assert [job.count for job in take_within(jobs, 30, max_rows=64, max_requests=64, wait=600.0)] == [1]
    # Its next request comes once the worker is free again.
    threading.Timer(0.1, lambda: jobs.put(Job("next", 1))).start()
    assert [job.request_id for job in take_within(jobs, 30, max_rows=64, max_requests=64, wait=600.0)] == ["next"]


def test_waits_for_the_clients_the_last_step_answered():
    jobs = queue_of(1, 1, 1)
    assert len(jobs.take(max_rows=64, max_requests=64, wait=0)) == 3
    # Their three clients ask again once answered, one a little later: the next step waits for it.
    for delay, name in ((0.05, "first"), (0.05, "second"), (0.2, "late")):
        threading.Timer(delay, lambda name=name: jobs.put(Job(name, 1))).start()
    assert sorted(job.request_id for job in take_within(jobs, 30, max_rows=64, max_requests=64, wait=20.0)) == ["first", "late", "second"]


def test_the_wait_counts_from_when_the_worker_is_free_if_the_oldest_came_earlier():
    """Under load the oldest request arrived during the last step: the client still fetching its
    answer then is waited for all the same."""
    jobs = queue_of(1)
    jobs.take(max_rows=64, max_requests=64, wait=0)
    jobs.put(Job("waited through the last step", 1, arrived=time.monotonic() - 60))
    threading.Timer(0.1, lambda: jobs.put(Job("answered by the last step", 1))).start()
    assert [job.request_id for job in take_within(jobs, 30, max_rows=64, max_requests=64, wait=20.0)] == [
        "waited through the last step", "answered by the last step"]


def test_the_wait_is_bounded():
    jobs = queue_of(1, 1, 1, 1)
    jobs.take(max_rows=64, max_requests=64, wait=0)
    jobs.put(Job("alone now", 1))  # the other three clients are gone
    assert [job.request_id for job in take_within(jobs, 30, max_rows=64, max_requests=64, wait=0.2)] == ["alone now"]


def test_a_full_batch_goes_without_waiting():
    jobs = queue_of(1, 1, 1)
    jobs.take(max_rows=64, max_requests=64, wait=0)
    jobs.put(Job("a", 32))
    jobs.put(Job("b", 32))
    assert [job.request_id for job in take_within(jobs, 30, max_rows=64, max_requests=64, wait=600.0)] == ["a", "b"]


def test_a_request_that_does_not_fit_stays_first_in_line():
    jobs = queue_of(40, 40, 1)
    assert [job.count for job in jobs.take(max_rows=64, max_requests=64, wait=30.0)] == [40]
    assert [job.count for job in jobs.take(max_rows=64, max_requests=64, wait=0)] == [40, 1]


def test_closed_queue_hands_out_what_is_left_then_none():
    jobs = queue_of(1)
    jobs.close()
    assert [job.count for job in jobs.take(max_rows=64, max_requests=64, wait=30.0)] == [1]
    assert jobs.take(max_rows=64, max_requests=64, wait=30.0) is None


def test_an_idle_worker_is_told_so_and_a_job_still_wakes_it_at_once():
    jobs = RequestQueue()
    assert jobs.take(max_rows=64, max_requests=64, wait=0, idle=0.05) == []
    threading.Timer(0.1, lambda: jobs.put(Job("next", 1))).start()
    assert [job.request_id for job in jobs.take(max_rows=64, max_requests=64, wait=0, idle=30.0)] == ["next"]
    jobs.close()
    assert jobs.take(max_rows=64, max_requests=64, wait=0, idle=30.0) is None
