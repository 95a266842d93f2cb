"""When a tick is a full one: a changed child or spec, a model still converging, the resync period."""
from privatemodel.controller.schedule import Schedule

SERVING = {"phase": "Serving", "observedGeneration": 1}


def test_a_model_at_rest_is_reconciled_once_per_resync_period():
    schedule = Schedule(resync_seconds=120)
    assert schedule.take("ns", "m", SERVING, 1, now=0)  # never reconciled by this process
    assert not any(schedule.take("ns", "m", SERVING, 1, now=t) for t in range(2, 120, 2))
    assert schedule.take("ns", "m", SERVING, 1, now=120)


def test_a_changed_child_or_spec_is_reconciled_at_the_next_tick():
    schedule = Schedule(resync_seconds=120)
    schedule.take("ns", "m", SERVING, 1, now=0)
    schedule.touch("ns", "m")
    assert schedule.take("ns", "m", SERVING, 1, now=2)
    assert not schedule.take("ns", "m", SERVING, 1, now=4)  # the touch was taken
    assert schedule.take("ns", "m", SERVING, 2, now=6)  # a new generation of the spec
    schedule.touch("ns", "other")
    assert not schedule.take("ns", "m", SERVING, 1, now=8)


def test_a_converging_model_is_reconciled_at_every_tick():
    schedule = Schedule(resync_seconds=120)
    for phase in ("Pending", "Sharing", "Starting", None):
        assert schedule.take("ns", "m", {"phase": phase, "observedGeneration": 1}, 1, now=10)


def test_a_deleted_model_is_forgotten():
    schedule = Schedule(resync_seconds=120)
    schedule.take("ns", "m", SERVING, 1, now=0)
    schedule.forget("ns", "m")
    assert schedule.take("ns", "m", SERVING, 1, now=1)
