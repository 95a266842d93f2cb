"""Status conditions: one setter, and the rollup of the sub-conditions into Ready and a phase.

Pure functions over the `status.conditions` list: they return a new list and never touch the
one passed in, so a handler can compare old and new and patch only on a real change.
"""
from datetime import UTC, datetime

from privatemodel.controller.consts import FAILURE_REASONS, ConditionType, Phase, Reason

# In dependency order: Ready explains itself by the first of these that is not True.
SUB_CONDITIONS = (ConditionType.PLAYERS_READY, ConditionType.WEIGHTS_SHARED, ConditionType.SERVING)
STATUSES = ("True", "False", "Unknown")


def find_condition(conditions: list[dict] | None, condition_type: str) -> dict | None:
    return next((c for c in conditions or () if c.get("type") == condition_type), None)


def is_true(conditions: list[dict] | None, condition_type: str) -> bool:
    condition = find_condition(conditions, condition_type)
    return condition is not None and condition.get("status") == "True"


def set_condition(
    conditions: list[dict] | None,
    condition_type: str,
    status: bool | str,
    reason: str,
    message: str,
    now: datetime | None = None,
) -> list[dict]:
    """`conditions` with one condition set: an equal list when nothing changed.

    lastTransitionTime moves only when the status does; a new reason or message keeps it.
    """
    status = _status_text(status)
    conditions = [dict(condition) for condition in conditions or ()]
    current = find_condition(conditions, condition_type)
    if current is None:
        conditions.append({"type": condition_type, "lastTransitionTime": _timestamp(now)})
        current = conditions[-1]
    elif current.get("status") != status:
        current["lastTransitionTime"] = _timestamp(now)
    current.update(status=status, reason=reason, message=message)
    return conditions


def remove_condition(conditions: list[dict] | None, condition_type: str) -> list[dict]:
    """`conditions` without the condition of this type (one that no longer applies)."""
    return [dict(condition) for condition in conditions or () if condition.get("type") != condition_type]


def rollup(
    conditions: list[dict] | None, spec_error: str | None = None, now: datetime | None = None
) -> tuple[list[dict], str]:
    """(conditions with Ready set from the sub-conditions, the phase they add up to).

    spec_error: the SpecError message when the spec cannot be built; it fails Ready and the phase
    whatever the sub-conditions say (they describe children built from an older, valid spec).
    """
    failure = _failure(conditions)
    if spec_error is not None:
        ready = ("False", Reason.INVALID_SPEC, spec_error)
    elif failure is not None:
        ready = ("False", failure["reason"], f"{failure['type']}: {failure.get('message', '')}")
    else:
        blocking = next((t for t in SUB_CONDITIONS if not is_true(conditions, t)), None)
        if blocking is None:
            ready = ("True", Reason.READY, "players ready, weights shared, serving clients")
        elif (condition := find_condition(conditions, blocking)) is None:
            ready = ("False", Reason.INITIALIZING, f"{blocking}: not observed yet")
        else:
            ready = ("False", condition.get("reason", ""), f"{blocking}: {condition.get('message', '')}")
    conditions = set_condition(conditions, ConditionType.READY, *ready, now=now)
    return conditions, _phase(conditions, spec_error is not None, failure is not None)


def _phase(conditions: list[dict], invalid_spec: bool, failed: bool) -> str:
    if invalid_spec:
        return Phase.FAILED
    serving = find_condition(conditions, ConditionType.SERVING)
    if serving is not None and serving.get("reason") == Reason.REQUESTS_COMPLETED:
        return Phase.COMPLETED
    # Serving only once serving answers: a user who waits for it can send a query at once. With
    # several triples, one that failed (its sharing Job, say) does not stop the others serving.
    if is_true(conditions, ConditionType.SERVING):
        return Phase.SERVING
    if failed:
        return Phase.FAILED
    if is_true(conditions, ConditionType.WEIGHTS_SHARED):
        return Phase.STARTING
    if is_true(conditions, ConditionType.PLAYERS_READY):
        return Phase.SHARING
    return Phase.PENDING


def _failure(conditions: list[dict] | None) -> dict | None:
    """The first sub-condition that needs a user to act."""
    for condition_type in SUB_CONDITIONS:
        condition = find_condition(conditions, condition_type)
        if condition and condition.get("status") == "False" and condition.get("reason") in FAILURE_REASONS:
            return condition
    return None


def _status_text(status: bool | str) -> str:
    if isinstance(status, bool):
        return "True" if status else "False"
    if status not in STATUSES:
        raise ValueError(f"condition status must be one of {', '.join(STATUSES)}, got {status!r}")
    return status


def _timestamp(now: datetime | None) -> str:
    return (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
