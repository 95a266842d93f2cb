"""Dynamic batching on real players: concurrent clients' requests share MPC steps, and each client
gets the answer to its own query, whatever the others send.

Players and serving of their own: serving waits up to a second to coalesce, so concurrent requests
land in one step however slowly this machine starts the clients' threads.
"""
import json
import secrets
import threading
import time

import numpy as np
import pytest

from integration.support import assert_matches_plaintext, https_call, local_players, run_cli
from privatemodel.runtime.client.client import PrivateClient, ServingError
from privatemodel.runtime.local.cluster import LocalServing

BATCH_WAIT_MS = "1000"


@pytest.fixture(scope="module")
def players(tmp_path_factory, reference_model):
    with local_players(tmp_path_factory.mktemp("batching")) as cluster:
        result = run_cli("share", "--model", str(reference_model["path"]), "--config", str(cluster.hostmap_path))
        assert result.returncode == 0, result.stderr
        yield cluster


# Compiled once ready, while idle (as the operator has serving do); the tests' steps use them all.
IDLE_WARM_UP = (2, 4, 8, 16)


@pytest.fixture(scope="module")
def batching_serving(players):
    serving = LocalServing(players)
    serving.start(extra_args=["--batch-wait-ms", BATCH_WAIT_MS, "--warm-up-idle", ",".join(map(str, IDLE_WARM_UP))])
    yield serving
    serving.stop()


def warmed_sizes(players):
    """The batch sizes serving's log says it compiled, in order, and whether each came after ready."""
    lines = (players.directory / "serve.log").read_text().splitlines()
    ready = next((index for index, line in enumerate(lines) if "ready for clients" in line), len(lines))
    return [(int(line.split("warmed up batch size ")[1].split()[0]), index > ready)
            for index, line in enumerate(lines) if "warmed up batch size" in line]


def test_larger_batches_compile_after_ready_while_no_request_waits(players, batching_serving):
    """Ready after batch size 1 only; the sizes concurrent clients need compile before any comes."""
    deadline = time.monotonic() + 120
    while len(warmed_sizes(players)) < 1 + len(IDLE_WARM_UP) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert warmed_sizes(players) == [(1, False)] + [(size, True) for size in IDLE_WARM_UP]


def in_parallel(*calls):
    """Run the calls at once, each in its own thread; their results (or the exception raised), in order."""
    results = [None] * len(calls)

    def run(index):
        try:
            results[index] = calls[index]()
        except Exception as error:  # noqa: BLE001 - returned for the test to check
            results[index] = error

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    return results


def metrics(cluster, serving):
    """Serving's /metrics: {sample name with its le label if any: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    status, text = https_call(cluster, f"{serving.url}/metrics")
    assert status == 200
    return {sample.name + (f"{{le={sample.labels['le']}}}" if "le" in sample.labels else ""): sample.value
            for family in text_string_to_metric_families(text.decode()) for sample in family.samples}


def steps_with_several_requests(before, after):
    """MPC steps that ran more than one request, between two scrapes."""
    def steps(samples):
        return samples["privatemodel_serving_batch_requests_count"] - samples["privatemodel_serving_batch_requests_bucket{le=1.0}"]

    return steps(after) - steps(before)


def predict_rows(cluster, reference_model, rows):
    """A client of its own predicts these rows of the held-out digits, as one request."""
    def call():
        return PrivateClient(cluster.access_path).predict(reference_model["x"][rows])

    return call


def test_concurrent_clients_share_steps_and_each_gets_its_own_answer(players, batching_serving, reference_model):
    before = metrics(players, batching_serving)
    digits = [[index] for index in range(40, 48)]  # a different digit per client: a mix-up would show
    answers = in_parallel(*(predict_rows(players, reference_model, rows) for rows in digits))
    for rows, answer in zip(digits, answers):
        assert not isinstance(answer, Exception), answer
        assert_matches_plaintext(answer, reference_model["plaintext"][rows])
    after = metrics(players, batching_serving)
    assert steps_with_several_requests(before, after) >= 1
    assert after["privatemodel_serving_batch_requests_sum"] - before["privatemodel_serving_batch_requests_sum"] == len(digits)


def test_requests_of_different_counts_in_one_step_get_their_own_rows(players, batching_serving, reference_model):
    before = metrics(players, batching_serving)
    batches = [list(range(50, 51)), list(range(51, 53)), list(range(53, 56)), list(range(56, 61))]
    answers = in_parallel(*(predict_rows(players, reference_model, rows) for rows in batches))
    for rows, answer in zip(batches, answers):
        assert not isinstance(answer, Exception), answer
        assert_matches_plaintext(answer, reference_model["plaintext"][rows])
    after = metrics(players, batching_serving)
    assert steps_with_several_requests(before, after) >= 1
    assert after["privatemodel_serving_batch_rows_sum"] - before["privatemodel_serving_batch_rows_sum"] == 11


class Hostile:
    """A client that stages its query shares by hand, with the tokens to delete them, and posts what it likes."""

    def __init__(self, cluster, serving):
        self.cluster = cluster
        self.serving = serving
        self.client = PrivateClient(cluster.access_path)
        self.request_id = secrets.token_hex(16)
        self.tokens = [secrets.token_urlsafe(32) for _ in self.client.holders]

    def stage(self, x, counts=None):
        """Stage x's shares; `counts` gives each holder's X-Batch-Size (a share of that many rows of x)."""
        counts = counts or [len(x)] * len(self.client.holders)
        for holder, token, count, share in zip(self.client.holders, self.tokens, counts, self.client._share(x)):
            holder.request("PUT", f"/v2/requests/{self.request_id}/input", body=share[:count].astype("<i8").tobytes(),
                           headers={"Authorization": f"Bearer {token}", "X-Batch-Size": str(count)})
        return self

    def post(self, count):
        """(status, body) of POST /v1/predict for this request with `count`."""
        body = json.dumps({"id": self.request_id, "count": count, "shareId": self.client.share_id}).encode()
        return https_call(self.cluster, f"{self.serving.url}/v1/predict", "POST", body, {"Content-Type": "application/json"})

    def delete(self):
        for holder, token in zip(self.client.holders, self.tokens):
            holder.request("DELETE", f"/v2/requests/{self.request_id}", headers={"Authorization": f"Bearer {token}"}, ok=(200, 404))

    def post_then_delete(self, count, after):
        """POST, and delete the staged query `after` s later, while serving queues or runs it."""
        deleter = threading.Timer(after, self.delete)
        deleter.start()
        try:
            return self.post(count)
        finally:
            deleter.join()


def test_a_hostile_client_neither_fails_nor_corrupts_the_others(players, batching_serving, reference_model):
    x = reference_model["x"]
    honest_rows = [[60], [61, 62], [63], [64]]
    short = Hostile(players, batching_serving).stage(x[:1])  # one input staged, four asked for
    uneven = Hostile(players, batching_serving).stage(x[:2], counts=[2, 1])  # holders hold different counts
    # Deleted while queued (the batch waits a second), and around the time its step runs.
    vanishing = [(Hostile(players, batching_serving).stage(x[:1]), after) for after in (0.2, 1.0, 1.1, 1.3)]
    results = in_parallel(*(predict_rows(players, reference_model, rows) for rows in honest_rows),
                          lambda: short.post(4), lambda: uneven.post(2),
                          *(lambda h=hostile, a=after: h.post_then_delete(1, a) for hostile, after in vanishing))
    honest, hostile = results[:len(honest_rows)], results[len(honest_rows):]
    for rows, answer in zip(honest_rows, honest):
        assert not isinstance(answer, Exception), answer
        assert_matches_plaintext(answer, reference_model["plaintext"][rows])
    status, body = hostile[0]
    assert status == 400 and "asks for 4 input(s)" in body["error"] and "stage it again with X-Batch-Size 4" in body["error"], body
    status, body = hostile[1]
    assert status == 400 and "on server1" in body["error"], body
    for status, body in hostile[2:]:
        # Answered if its step ran before the delete; else refused, naming why: never a 5xx.
        assert status == 200 or (status == 400 and "request" in body["error"]), (status, body)
    # Serving is still fine for everyone.
    assert_matches_plaintext(predict_rows(players, reference_model, [65])(), reference_model["plaintext"][[65]])


def test_exactly_n_requests_under_concurrency(players, reference_model):
    serving = LocalServing(players)
    serving.start(num_requests=5, extra_args=["--batch-wait-ms", BATCH_WAIT_MS])
    try:
        digits = [[index] for index in range(70, 78)]
        results = in_parallel(*(predict_rows(players, reference_model, rows) for rows in digits))
        answered = [(rows, result) for rows, result in zip(digits, results) if not isinstance(result, Exception)]
        refused = [result for result in results if isinstance(result, Exception)]
        assert len(answered) == 5
        for rows, answer in answered:
            assert_matches_plaintext(answer, reference_model["plaintext"][rows])
        for error in refused:
            assert isinstance(error, ServingError)
            assert "(410): this model has answered all its requests" in str(error) or "is unreachable" in str(error), error
        assert serving.wait(timeout=60) == 0
        assert "stopped after 5 request(s)" in serving.process.log_file.read_text()
    finally:
        serving.stop()
