"""The one thread that keeps every connection's deadline (runtime/mpc/https.py): a deadline fires
once it is due, a cancelled one never does, and a shorter deadline set after a longer one is not
held up by it. The end-to-end cut-offs of slow clients are in tests/faults/test_http_abuse.py."""
import threading
import time

from privatemodel.runtime.mpc.https import _Deadlines


def test_a_due_deadline_fires_once_and_a_cancelled_one_never():
    deadlines = _Deadlines()
    fired, cancelled_fired = threading.Event(), threading.Event()
    calls = []
    started = time.monotonic()
    deadlines.start(0.2, lambda: (calls.append(time.monotonic() - started), fired.set()))
    deadlines.start(0.1, cancelled_fired.set).cancel()

    assert fired.wait(5)
    time.sleep(0.3)
    assert len(calls) == 1 and calls[0] >= 0.2
    assert not cancelled_fired.is_set()


def test_a_shorter_deadline_set_later_fires_first():
    deadlines = _Deadlines()
    order = []
    done = threading.Event()
    deadlines.start(0.6, lambda: (order.append("long"), done.set()))
    time.sleep(0.05)  # the thread now waits for the long one
    started = time.monotonic()
    deadlines.start(0.1, lambda: order.append(("short", time.monotonic() - started)))

    assert done.wait(5)
    assert order[0][0] == "short" and order[0][1] < 0.4, order
    assert order[1] == "long"
