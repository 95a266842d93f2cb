"""What each fault case tried and what came of it, for the table the suite prints at the end.

An attempt runs with a deadline and is classified by what a user would see:
- "clear error": one line, no traceback, naming what is wrong and where (the case's pattern);
- "unclear error": refused, but with a trace, several lines, a 500 or words that name nothing; or
  other clients got errors because of it;
- "silently wrong": the bad input was accepted, or an answer came back that does not match Keras;
- "hung": the deadline passed with no answer;
- "answered right": a fault that should not stop service (a client vanishing) did not, and every
  answer given meanwhile matched Keras.
"""
import re
import threading
from dataclasses import dataclass

from integration.support import assert_matches_plaintext

CLEAR = "clear error"
UNCLEAR = "unclear error"
SILENT = "silently wrong"
HUNG = "hung"
ANSWERED = "answered right"
KINDS = (CLEAR, ANSWERED, UNCLEAR, SILENT, HUNG)


@dataclass
class Outcome:
    case: str
    tried: str
    kind: str
    seen: str  # the error line, what was answered, or how long it was waited for


RECORDED: list[Outcome] = []
NOTES: list[str] = []  # measurements printed under the table (the soak's)


class StillHeld(Exception):
    """Raised by an action that watched something outlive its deadline (a connection, a process)."""


class FaultLog:
    """The attempts of one test case."""

    def __init__(self, case: str):
        self.case = case

    def attempt(self, tried: str, action, expected: str, deadline: float) -> Outcome:
        """Run action() within `deadline` seconds; it returns the error a user sees (a string), or
        None when the input was accepted. `expected` is a regex the error must match."""
        result = {}

        def run():
            try:
                result["seen"] = action()
            except StillHeld as held:
                result["held"] = str(held)
            except Exception as error:  # noqa: BLE001 - a fault action's own failure is an outcome too
                result["seen"] = f"{type(error).__name__} raised in the test's action: {error}"

        worker = threading.Thread(target=run, daemon=True, name=f"attempt {tried}")
        worker.start()
        worker.join(deadline)
        if worker.is_alive():
            return self.record(tried, HUNG, f"no answer within {deadline:.0f} s")
        if "held" in result:
            return self.record(tried, HUNG, result["held"])
        return self.record(tried, *classify(result["seen"], expected))

    def record_service(self, tried: str, private, plaintext, errors=()) -> Outcome:
        """A fault that service should survive: the clients' answers and errors meanwhile."""
        if not agrees_with_keras(private, plaintext):
            return self.record(tried, SILENT, f"{len(private)} answers, not all matching Keras")
        if errors:
            return self.record(tried, UNCLEAR, f"clients got {len(errors)} error(s): {errors[0]}")
        return self.record(tried, ANSWERED, f"{len(private)} answers, all matching Keras")

    def record(self, tried: str, kind: str, seen: str) -> Outcome:
        outcome = Outcome(self.case, tried, kind, seen)
        RECORDED.append(outcome)
        return outcome


def agrees_with_keras(private, plaintext) -> bool:
    try:
        assert_matches_plaintext(private, plaintext)
    except AssertionError:
        return False
    return True


def classify(seen, expected: str) -> tuple[str, str]:
    if seen is None:
        return SILENT, "accepted"
    lines = seen.strip().splitlines()
    if len(lines) == 1 and "Traceback" not in seen and re.search(expected, lines[0]):
        return CLEAR, lines[0]
    return UNCLEAR, " | ".join(lines[-3:])[:300]


def error_of(action, error_type) -> str | None:
    """The message of the `error_type` refusal `action` raised, or None if it was accepted."""
    try:
        action()
    except error_type as error:
        return str(error)
    return None


def cli_error(result) -> str | None:
    """What `privatemodel ...` told its user: None if it succeeded, else its error line(s)."""
    if result.returncode == 0:
        return None
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    if len(errors) == 1 and "Traceback" not in result.stderr:
        return f"exit {result.returncode}: {errors[0]}"
    return f"exit {result.returncode}:\n{result.stderr[-2000:]}"


def http_error(status: int, body) -> str | None:
    """An HTTP answer: None if it succeeded; the one-line reason of a refusal; a 500 or a body
    without a reason whole."""
    if status < 400:
        return None
    if status != 500 and isinstance(body, dict) and isinstance(body.get("error"), str):
        return f"{status}: {body['error']}"
    return f"{status}:\n{body!r}"


def table() -> list[str]:
    """The rows printed at the end of the run, under the case that tried them, and the totals."""
    width = min(max(len(o.tried) for o in RECORDED), 64)
    lines = [f"  {'input tried':<{width}}  {'outcome':<14}  seen"]
    cases = list(dict.fromkeys(o.case for o in RECORDED))
    for case in cases:
        lines.append(case.removeprefix("test_").replace("_", " "))
        for outcome in (o for o in RECORDED if o.case == case):
            seen = re.sub(r"/tmp/pytest-of-\w+/pytest-\d+/\S*?/", ".../", outcome.seen)
            lines.append(f"  {outcome.tried[:width]:<{width}}  {outcome.kind:<14}  {seen[:100]}")
    counts = {kind: sum(o.kind == kind for o in RECORDED) for kind in KINDS}
    lines.append(
        f"inputs tried: {len(RECORDED)}, clear errors: {counts[CLEAR]}, answered right: {counts[ANSWERED]}, "
        f"silently wrong: {counts[SILENT]}, hung: {counts[HUNG]}, unclear errors: {counts[UNCLEAR]}"
    )
    return lines
