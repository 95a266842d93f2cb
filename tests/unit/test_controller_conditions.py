"""The condition setter and the rollup into Ready and a phase."""
import copy
from datetime import UTC, datetime, timedelta

import pytest

from privatemodel.controller.conditions import find_condition, rollup, set_condition
from privatemodel.controller.consts import ConditionType, Phase, Reason

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_a_new_condition_is_appended_with_its_transition_time():
    conditions = set_condition([], ConditionType.PLAYERS_READY, False, Reason.PLAYERS_STARTING, "0/3 ready", now=T0)
    assert conditions == [
        {
            "type": ConditionType.PLAYERS_READY,
            "status": "False",
            "reason": Reason.PLAYERS_STARTING,
            "message": "0/3 ready",
            "lastTransitionTime": "2026-01-02T03:04:05Z",
        }
    ]


def test_setting_the_same_condition_again_changes_nothing():
    before = set_condition(None, ConditionType.PLAYERS_READY, True, Reason.PLAYERS_READY, "3/3 ready", now=T0)
    after = set_condition(before, ConditionType.PLAYERS_READY, "True", Reason.PLAYERS_READY, "3/3 ready", now=T1)
    assert after == before


def test_a_new_reason_keeps_the_transition_time():
    before = set_condition([], ConditionType.PLAYERS_READY, False, Reason.PLAYERS_STARTING, "0/3 ready", now=T0)
    after = set_condition(before, ConditionType.PLAYERS_READY, False, Reason.PLAYERS_STARTING, "2/3 ready", now=T1)
    assert after[0]["message"] == "2/3 ready"
    assert after[0]["lastTransitionTime"] == "2026-01-02T03:04:05Z"


def test_a_new_status_moves_the_transition_time():
    before = set_condition([], ConditionType.PLAYERS_READY, False, Reason.PLAYERS_STARTING, "0/3 ready", now=T0)
    after = set_condition(before, ConditionType.PLAYERS_READY, True, Reason.PLAYERS_READY, "3/3 ready", now=T1)
    assert after[0]["status"] == "True"
    assert after[0]["lastTransitionTime"] == "2026-01-02T03:09:05Z"


def test_the_list_passed_in_is_never_changed():
    before = set_condition([], ConditionType.PLAYERS_READY, False, Reason.PLAYERS_STARTING, "0/3 ready", now=T0)
    frozen = copy.deepcopy(before)
    set_condition(before, ConditionType.PLAYERS_READY, True, Reason.PLAYERS_READY, "3/3 ready", now=T1)
    set_condition(before, ConditionType.SERVING, False, Reason.WAITING_FOR_SHARES, "", now=T1)
    rollup(before, now=T1)
    assert before == frozen


def test_other_conditions_keep_their_order():
    conditions = []
    for condition_type in (ConditionType.PLAYERS_READY, ConditionType.WEIGHTS_SHARED, ConditionType.SERVING):
        conditions = set_condition(conditions, condition_type, False, "R", "", now=T0)
    conditions = set_condition(conditions, ConditionType.WEIGHTS_SHARED, True, Reason.SHARED, "", now=T1)
    assert [c["type"] for c in conditions] == ["PlayersReady", "WeightsShared", "Serving"]


def test_status_must_be_a_condition_status():
    with pytest.raises(ValueError, match="True, False, Unknown"):
        set_condition([], ConditionType.SERVING, "yes", Reason.SERVING_READY, "")


def conditions_of(*settings):
    conditions = []
    for condition_type, status, reason in settings:
        conditions = set_condition(conditions, condition_type, status, reason, f"{reason} message", now=T0)
    return conditions


PLAYERS_STARTING = (ConditionType.PLAYERS_READY, False, Reason.PLAYERS_STARTING)
PLAYERS_READY = (ConditionType.PLAYERS_READY, True, Reason.PLAYERS_READY)
SHARING = (ConditionType.WEIGHTS_SHARED, False, Reason.SHARING_IN_PROGRESS)
SHARES_LOST = (ConditionType.WEIGHTS_SHARED, False, Reason.SHARES_LOST)
SHARING_FAILED = (ConditionType.WEIGHTS_SHARED, False, Reason.SHARING_FAILED)
SHARED = (ConditionType.WEIGHTS_SHARED, True, Reason.SHARED)
SERVING_STARTING = (ConditionType.SERVING, False, Reason.SERVING_STARTING)
SERVING_READY = (ConditionType.SERVING, True, Reason.SERVING_READY)
COMPLETED = (ConditionType.SERVING, False, Reason.REQUESTS_COMPLETED)


@pytest.mark.parametrize(
    "settings, phase, ready_status, ready_reason",
    [
        ((), Phase.PENDING, "False", Reason.INITIALIZING),
        ((PLAYERS_STARTING,), Phase.PENDING, "False", Reason.PLAYERS_STARTING),
        ((PLAYERS_READY, SHARING), Phase.SHARING, "False", Reason.SHARING_IN_PROGRESS),
        ((PLAYERS_READY, SHARES_LOST), Phase.SHARING, "False", Reason.SHARES_LOST),
        ((PLAYERS_READY, SHARED, SERVING_STARTING), Phase.STARTING, "False", Reason.SERVING_STARTING),
        ((PLAYERS_READY, SHARED, SERVING_READY), Phase.SERVING, "True", Reason.READY),
        ((PLAYERS_READY, SHARED, COMPLETED), Phase.COMPLETED, "False", Reason.REQUESTS_COMPLETED),
        ((PLAYERS_READY, SHARING_FAILED), Phase.FAILED, "False", Reason.SHARING_FAILED),
        # A failure explains Ready even when an earlier condition is not True either.
        ((PLAYERS_STARTING, SHARING_FAILED), Phase.FAILED, "False", Reason.SHARING_FAILED),
        # Completed stays Completed when a player is replaced afterwards.
        ((PLAYERS_STARTING, SHARES_LOST, COMPLETED), Phase.COMPLETED, "False", Reason.PLAYERS_STARTING),
    ],
)
def test_rollup(settings, phase, ready_status, ready_reason):
    conditions, rolled_phase = rollup(conditions_of(*settings), now=T1)
    ready = find_condition(conditions, ConditionType.READY)
    assert rolled_phase == phase
    assert (ready["status"], ready["reason"]) == (ready_status, ready_reason)


def test_ready_explains_itself_by_the_condition_that_holds_it_back():
    conditions, _ = rollup(conditions_of(PLAYERS_READY, SHARING_FAILED))
    assert find_condition(conditions, ConditionType.READY)["message"] == "WeightsShared: SharingFailed message"


def test_an_invalid_spec_fails_whatever_the_children_say():
    error = "spec.inputShape[2]: must be a positive integer, got -1"
    conditions, phase = rollup(conditions_of(PLAYERS_READY, SHARED, SERVING_READY), spec_error=error)
    ready = find_condition(conditions, ConditionType.READY)
    assert phase == Phase.FAILED
    assert (ready["status"], ready["reason"]) == ("False", Reason.INVALID_SPEC)
    assert ready["message"] == error


def test_rolling_up_twice_changes_nothing():
    once, phase = rollup(conditions_of(PLAYERS_READY, SHARED, SERVING_READY), now=T0)
    twice, again = rollup(once, now=T1)
    assert twice == once and again == phase
