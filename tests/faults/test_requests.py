"""Bad requests from clients: queries that do not fit, ids never staged, abandoned and cut-off requests.

Each is refused with one line naming what and where, quickly, and serving goes on for everyone else.
"""
import json
import re
import secrets
import threading
import time

import numpy as np
import pytest

from faults import wire
from faults.outcomes import ANSWERED, CLEAR, cli_error, error_of, http_error
from integration.support import assert_matches_plaintext, https_call, run_cli
from privatemodel import contract
from privatemodel.runtime.client.client import QueryError, ServingError
from privatemodel.runtime.player.ingress import MAX_ENTRIES
from privatemodel.runtime.serving.server import REQUEST_ID


def predict_request(client, request_id, count=1):
    body = json.dumps({"id": request_id, "count": count, "shareId": client.share_id}).encode()
    return lambda: client.serving.request("POST", "/v1/predict", body)


def test_an_unstaged_request_is_refused_at_once_and_serving_goes_on(client, reference_model, faults):
    def twenty_unstaged():
        messages = [error_of(predict_request(client, secrets.token_hex(16)), ServingError) for _ in range(20)]
        if None in messages:
            return None
        # One refusal, twenty times (each naming its own id); different ones read as several lines.
        return "\n".join(sorted({re.sub("[0-9a-f]{32}", "ID", message) for message in messages}))

    outcome = faults.attempt("POST /v1/predict for an id never staged, 20 times", twenty_unstaged,
                             r"serve at https://\S+ refused .*\(400\): request ID is not staged on server0, server1", deadline=10)
    assert outcome.kind == CLEAR, outcome
    assert_matches_plaintext(client.predict(reference_model["x"][:2]), reference_model["plaintext"][:2])


@pytest.mark.parametrize("query, tried, message", [
    (np.zeros((28, 28)), "query of shape (28, 28)", r"query shape \(28, 28\) does not fit the model input \(28, 28, 1\)"),
    (np.zeros((2, 28, 28, 3)), "query of shape (2, 28, 28, 3)", r"query shape \(2, 28, 28, 3\) does not fit"),
    (np.zeros((0, 28, 28, 1)), "empty batch", r"query shape \(0, 28, 28, 1\) does not fit"),
    (np.array([["a"] * 28] * 28), "query of strings", "query dtype <U1 is not numeric"),
    (np.full((28, 28, 1), np.nan), "query of NaN", "query has 784 NaN or infinite value"),
    (np.full((1, 28, 28, 1), np.inf), "query of inf", "query has 784 NaN or infinite value"),
    (np.full((1, 28, 28, 1), 1e9), "query of 1e9 (beyond fixed point)", r"query values must lie within ±\S+ \(fixed-point range\), got 1e\+09"),
])
def test_bad_queries_are_refused_before_anything_is_sent(client, reference_model, faults, query, tried, message):
    outcome = faults.attempt(f"client.predict: {tried}", lambda: error_of(lambda: client.predict(query), QueryError), message, deadline=10)
    assert outcome.kind == CLEAR, outcome
    assert_matches_plaintext(client.predict(reference_model["x"][:1]), reference_model["plaintext"][:1])


@pytest.mark.parametrize("make, tried, message", [
    (lambda x: np.float64(3.0), "predict --input a 0-d .npy", r"query\.npy: holds a single number; a query is an array of shape \(28, 28, 1\)"),
    (lambda x: x[0, :27, :27, 0], "predict --input an .npy of shape (27, 27)", r"query shape \(27, 27\) does not fit the model input \(28, 28, 1\)"),
    (lambda x: x[:3, :, :, 0], "predict --input an .npy of shape (3, 28, 28)", r"query shape \(3, 28, 28\) does not fit the model input"),
])
def test_predict_names_a_query_file_that_does_not_fit(cluster, serving, reference_model, tmp_path, faults, make, tried, message):
    np.save(tmp_path / "query.npy", make(reference_model["x"]))
    predict = lambda: cli_error(run_cli("predict", "--access", str(cluster.access_path), "--input", str(tmp_path / "query.npy"), timeout=60))  # noqa: E731
    outcome = faults.attempt(tried, predict, r"exit 2: error: .*" + message, deadline=90)
    assert outcome.kind == CLEAR, outcome


def test_requests_that_skip_the_clients_checks_get_an_error_and_serving_goes_on(client, cluster, reference_model, faults):
    token = {"Authorization": "Bearer " + "t" * 32, "Content-Type": "application/octet-stream"}
    wrong = np.zeros((1, 27, 27, 1), np.int64).tobytes()
    url = cluster.ingress_url("server0") + "/v2/requests/" + "a" * 32 + "/input"
    outcome = faults.attempt("PUT a query share of shape (1, 27, 27, 1) on server0",
                             lambda: http_error(*https_call(cluster, url, "PUT", wrong, {**token, "X-Batch-Size": "1"})),
                             r"400: a share of 1 input\(s\) of shape \(28, 28, 1\) is 6272 bytes of int64, got 5832", deadline=30)
    assert outcome.kind == CLEAR, outcome
    outcome = faults.attempt('POST /v1/predict {"count": 65} (max batch 64)', lambda: error_of(predict_request(client, "b" * 32, 65), ServingError),
                             r"serve at \S+ refused .*\(400\): count must be an integer from 1 to 64, got 65", deadline=30)
    assert outcome.kind == CLEAR, outcome
    assert_matches_plaintext(client.predict(reference_model["x"][:3]), reference_model["plaintext"][:3])


def test_abandoned_requests_fill_staging_only_up_to_its_bound(client, cluster, reference_model, faults):
    """A client that stages and never asks for the answer: the holder refuses more, and says so."""
    holder = client.holders[0]
    share = np.zeros((1,) + client.input_shape, "<i8").tobytes()
    token = secrets.token_urlsafe(32)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/octet-stream", "X-Batch-Size": "1"}
    staged = []

    def stage_until_refused():
        for _ in range(MAX_ENTRIES + 1):
            request_id = secrets.token_hex(16)
            try:
                holder.request("PUT", f"/v2/requests/{request_id}/input", body=share, headers=headers)
            except ServingError as error:
                return str(error)
            staged.append(request_id)
        return None

    try:
        outcome = faults.attempt(f"stage {MAX_ENTRIES + 1} requests on server0 and abandon them", stage_until_refused,
                                 r"server0 at https://\S+ refused PUT .*\(503\): staging is full; retry shortly", deadline=120)
        assert outcome.kind == CLEAR, outcome
        assert len(staged) <= MAX_ENTRIES
        on_disk = [path.name for path in (cluster.state_dir("server0") / "requests").iterdir()]
        # Clients' staged inputs (serving's own warm-up and unused-slot files are not theirs).
        assert len([name for name in on_disk if name.endswith(".in") and REQUEST_ID.fullmatch(name[:-3])]) <= MAX_ENTRIES
    finally:
        for request_id in staged:
            holder.request("DELETE", f"/v2/requests/{request_id}", headers=headers, ok=(200, 404))
    assert_matches_plaintext(client.predict(reference_model["x"][:1]), reference_model["plaintext"][:1])


def test_a_client_that_vanishes_mid_request_does_not_stop_serving_for_others(client, cluster, serving, reference_model, faults):
    """Shares staged, predict posted, then the connection reset before the answer: others are served."""
    log_before = serving.process.log_file.read_text()
    answers, errors = {}, []

    def others(index):
        try:
            answers[index] = client.predict(reference_model["x"][index])[0]
        except ServingError as error:
            errors.append(str(error))

    def vanish():
        request_id = wire.stage(client, reference_model["x"][:1])
        # Serving has read the request by then: the reset comes while it is queued or running.
        wire.post_and_reset(cluster, serving.url, client, request_id, linger=0.3)
        return request_id

    threads = [threading.Thread(target=others, args=(index,)) for index in range(30, 36)]
    for thread in threads:
        thread.start()
    vanished = [vanish() for _ in range(5)]
    for thread in threads:
        thread.join(120)
    indices = sorted(answers)
    outcome = faults.record_service("5 clients reset their connection after POST /v1/predict; 6 others predict",
                                    [answers[i] for i in indices], reference_model["plaintext"][indices], errors)
    assert outcome.kind == ANSWERED and indices == list(range(30, 36)), outcome
    # The cut-off requests ran anyway (their answers wait on the holders until they expire).
    answers_left = [cluster.state_dir(holder) / "requests" / f"{request_id}.out" for holder in contract.SHARE_HOLDERS for request_id in vanished]
    deadline = time.monotonic() + 30
    while not all(path.exists() for path in answers_left) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(path.exists() for path in answers_left)
    # A vanished client costs serving at most one log line, never a trace.
    new_lines = serving.process.log_file.read_text()[len(log_before):].splitlines()
    assert "Traceback" not in "\n".join(new_lines)
    # Batching compiles a step for each new batch size it meets, and tf-encrypted logs its advice on
    # the model's layer order as it builds one: that line comes from the batch size, not the client.
    about_requests = [line for line in new_lines if " answered " not in line and " INFO tf_encrypted: " not in line]
    assert len(about_requests) <= len(vanished), new_lines
