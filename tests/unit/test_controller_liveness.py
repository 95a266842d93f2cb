"""The liveness check: which PrivateModels has the operator stopped reconciling?"""
from privatemodel.controller.liveness import Sightings

BOUND = 60


def model(name, uid, generation=1, deleting=False):
    meta = {"name": name, "namespace": "ns", "uid": uid, "generation": generation}
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


def test_models_reconciled_recently_are_fine():
    sightings = Sightings()
    sightings.reconciled("a", 1, now=100)
    assert sightings.overdue([model("a", "a")], now=100 + BOUND, bound=BOUND) == []


def test_a_model_never_reconciled_is_overdue_a_bound_after_the_first_probe_saw_it():
    sightings = Sightings()
    assert sightings.overdue([model("new", "n")], now=1000, bound=BOUND) == []
    assert sightings.overdue([model("new", "n")], now=1000 + BOUND, bound=BOUND) == []
    assert sightings.overdue([model("new", "n")], now=1001 + BOUND, bound=BOUND) == ["ns/new"]


def test_a_model_reconciled_before_the_bound_is_not_overdue():
    sightings = Sightings()
    sightings.overdue([model("new", "n")], now=1000, bound=BOUND)
    sightings.reconciled("n", 1, now=1030)
    assert sightings.overdue([model("new", "n")], now=1001 + BOUND, bound=BOUND) == []


def test_a_model_whose_ticks_stopped_is_overdue():
    sightings = Sightings()
    sightings.reconciled("a", 1, now=100)
    assert sightings.overdue([model("a", "a")], now=101 + BOUND, bound=BOUND) == ["ns/a"]


def test_an_edit_never_reconciled_is_overdue_although_the_old_generation_still_ticks():
    sightings = Sightings()
    sightings.reconciled("a", 1, now=1000)
    assert sightings.overdue([model("a", "a", generation=2)], now=1000, bound=BOUND) == []
    sightings.reconciled("a", 1, now=1000 + BOUND)  # a stale body: the edit was not seen
    assert sightings.overdue([model("a", "a", generation=2)], now=1001 + BOUND, bound=BOUND) == ["ns/a"]
    sightings.reconciled("a", 2, now=1002 + BOUND)
    assert sightings.overdue([model("a", "a", generation=2)], now=1002 + BOUND, bound=BOUND) == []


def test_models_being_deleted_and_models_gone_are_not_checked():
    sightings = Sightings()
    sightings.reconciled("gone", 1, now=0)
    sightings.overdue([model("gone", "gone"), model("deleting", "d", deleting=True)], now=0, bound=BOUND)
    assert sightings.overdue([model("deleting", "d", deleting=True)], now=10 * BOUND, bound=BOUND) == []
    # A model seen again under a reused name is a new uid, counted from scratch.
    assert sightings.overdue([model("gone", "gone-2")], now=10 * BOUND, bound=BOUND) == []
