"""The serving endpoint's own logic (queueing, counting, refusing), with a stand-in for the MPC."""
import json
import ssl
import threading
import time
import urllib.error
import urllib.request

import pytest

from privatemodel import contract, pki
from privatemodel.runtime.serving.endpoint import ServingEndpoint
from privatemodel.runtime.serving.server import RequestError, batch_buckets


def rid(number):
    return f"{number:032x}"


def test_batch_buckets():
    assert batch_buckets(1) == [1]
    assert batch_buckets(64) == [1, 2, 4, 8, 16, 32, 64]
    assert batch_buckets(48) == [1, 2, 4, 8, 16, 32, 48]


class RecordingServer:
    """Stands in for PrivateModelServer: records the ids it answers and its batches; refuses id 0 before
    queueing and count 13 in the batch's check."""

    max_batch = contract.DEFAULT_MAX_BATCH
    step_seconds = 0.0  # how long each batch's step takes

    def __init__(self):
        self.ids = []
        self.batches = []

    def validate(self, request_id, count, share_id):
        if request_id == rid(0):
            raise RequestError("request 0 is malformed")

    def run_batch(self, requests):
        if any(count == 7 for _, count in requests):  # a step that never ends, like one waiting on a lost player
            threading.Event().wait()
        time.sleep(self.step_seconds)
        refused = {request_id: RequestError("count 13 is unlucky") for request_id, count in requests if count == 13}
        self.batches.append(requests)
        self.ids += [request_id for request_id, _ in requests if request_id not in refused]
        return refused


@pytest.fixture(scope="module")
def tls_dir(tmp_path_factory):
    ca_key, ca_certificate = pki.new_ca("test")
    key, certificate = pki.issue(ca_key, ca_certificate, "serve")
    return pki.write_tls_dir(tmp_path_factory.mktemp("tls"), ca_certificate, key, certificate)


@pytest.fixture
def endpoint_factory(tls_dir):
    started = []

    def make(**options):
        endpoint = ServingEndpoint(RecordingServer(), port=0, tls_dir=tls_dir, host="127.0.0.1", **options)
        endpoint.ca_file = tls_dir / contract.TLS_CA
        endpoint.start_http()
        runner = threading.Thread(target=endpoint.run, name="endpoint-run", daemon=True)
        runner.start()
        started.append((endpoint, runner))
        return endpoint

    yield make
    for endpoint, runner in started:
        endpoint.finished.set()
        runner.join(10)


def call(endpoint, path, body=None):
    url = f"https://127.0.0.1:{endpoint.port}{path}"
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    context = ssl.create_default_context(cafile=str(endpoint.ca_file))
    context.check_hostname = False  # the certificate names the party, "serve"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10, context=context) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_not_ready_until_told(endpoint_factory):
    endpoint = endpoint_factory()
    assert call(endpoint, "/healthz") == (503, {"ready": False})
    assert call(endpoint, "/v1/predict", {"id": rid(1), "count": 1})[0] == 503
    endpoint.ready = True
    assert call(endpoint, "/healthz") == (200, {"ready": True})


def test_bad_requests_are_refused_and_serving_goes_on(endpoint_factory):
    endpoint = endpoint_factory()
    endpoint.ready = True
    assert call(endpoint, "/v1/predict", b"{oops")[0] == 400
    assert call(endpoint, "/v1/predict", {"count": 1})[0] == 400
    assert call(endpoint, "/v1/predict", b'{"id": "%s", "count": Infinity}' % rid(4).encode())[0] == 400
    assert call(endpoint, "/v1/predict", b"[" * 4000)[0] == 400  # nested deeper than the parser goes
    status, body = call(endpoint, "/v1/predict", {"id": rid(0), "count": 1})
    assert status == 400 and "malformed" in body["error"]
    status, body = call(endpoint, "/v1/predict", {"id": rid(5), "count": 13})
    assert status == 400 and "unlucky" in body["error"]
    assert call(endpoint, "/v1/predict", {"id": rid(6), "count": 1}) == (200, {"ok": True})
    assert endpoint.server.ids == [rid(6)]
    assert call(endpoint, "/status")[1]["requestsServed"] == 1


def test_exactly_n_requests_then_finished(endpoint_factory):
    endpoint = endpoint_factory(num_requests=2)
    endpoint.ready = True
    assert call(endpoint, "/v1/predict", {"id": rid(1), "count": 1})[0] == 200
    assert call(endpoint, "/v1/predict", {"id": rid(2), "count": 1})[0] == 200
    assert endpoint.finished.wait(5)
    assert endpoint.status() == {"ready": True, "requestsServed": 2, "numRequests": 2, "completed": True}


def test_wait_after_complete_refuses_more_but_stays_up(endpoint_factory):
    endpoint = endpoint_factory(num_requests=1, wait_after_complete=True)
    endpoint.ready = True
    assert call(endpoint, "/v1/predict", {"id": rid(1), "count": 1})[0] == 200
    status, body = call(endpoint, "/v1/predict", {"id": rid(2), "count": 1})
    assert status == 410 and "answered all its requests" in body["error"]
    assert not endpoint.finished.is_set()
    assert call(endpoint, "/status")[1]["completed"] is True


def test_a_stuck_step_turns_healthz_false_and_does_not_hold_the_exit(endpoint_factory, monkeypatch):
    from privatemodel.runtime.serving import endpoint as endpoints

    monkeypatch.setattr(endpoints, "STEP_DEADLINE_SECONDS", 0.5)
    monkeypatch.setattr(endpoints, "STOP_GRACE_SECONDS", 1.0)
    endpoint = endpoint_factory()
    endpoint.ready = True
    threading.Thread(target=call, args=(endpoint, "/v1/predict", {"id": rid(7), "count": 7}), daemon=True).start()
    deadline = time.monotonic() + 10
    while call(endpoint, "/healthz")[0] == 200 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert call(endpoint, "/healthz") == (503, {"ready": False})
    runner = [thread for thread in threading.enumerate() if thread.name == "endpoint-run"][0]
    endpoint.finished.set()
    runner.join(5)
    assert not runner.is_alive()
    assert "did not finish within 1 s of stopping" in str(endpoint.failure)


def scrape(endpoint):
    """GET /metrics as Prometheus reads it: {sample: value}."""
    from prometheus_client.parser import text_string_to_metric_families

    context = ssl.create_default_context(cafile=str(endpoint.ca_file))
    context.check_hostname = False
    url = f"https://127.0.0.1:{endpoint.port}/metrics"
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_count_requests_by_outcome_and_time_the_steps(endpoint_factory):
    endpoint = endpoint_factory()
    endpoint.ready = True
    assert call(endpoint, "/v1/predict", {"id": rid(1), "count": 1})[0] == 200
    assert call(endpoint, "/v1/predict", {"id": rid(2), "count": 1})[0] == 200
    assert call(endpoint, "/v1/predict", {"id": rid(0), "count": 1})[0] == 400  # refused before it is queued
    samples = scrape(endpoint)
    requests = {outcome: samples[("privatemodel_serving_requests_total", (("outcome", outcome),))]
                for outcome in ("answered", "refused", "failed")}
    assert requests == {"answered": 2, "refused": 1, "failed": 0}
    assert samples[("privatemodel_serving_request_duration_seconds_count", ())] == 3
    assert samples[("privatemodel_serving_mpc_step_duration_seconds_count", ())] == 2  # refused before a step
    assert samples[("privatemodel_serving_queue_depth", ())] == 0
    for name in ("batch_requests", "batch_rows", "queueing_delay_seconds"):
        assert samples[(f"privatemodel_serving_{name}_count", ())] == 2


def post_concurrently(endpoint, bodies):
    """POST every body at once; the (status, body) replies in the same order."""
    replies = [None] * len(bodies)

    def post(index):
        replies[index] = call(endpoint, "/v1/predict", bodies[index])

    threads = [threading.Thread(target=post, args=(index,)) for index in range(len(bodies))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return replies


def test_concurrent_requests_share_one_step_and_one_bad_request_fails_alone(endpoint_factory):
    endpoint = endpoint_factory(batch_wait=2.0)
    endpoint.server.step_seconds = 0.5  # the first runs alone (no client waited for); the others queue meanwhile
    endpoint.ready = True
    counts = [1, 13, 2, 1]
    replies = post_concurrently(endpoint, [{"id": rid(10 + index), "count": count} for index, count in enumerate(counts)])
    assert [status for status, _ in replies] == [200, 400, 200, 200]
    assert "unlucky" in replies[1][1]["error"]
    assert max(len(batch) for batch in endpoint.server.batches) > 1
    assert sorted(endpoint.server.ids) == [rid(10), rid(12), rid(13)]
    samples = scrape(endpoint)
    steps = samples[("privatemodel_serving_batch_requests_count", ())]
    assert samples[("privatemodel_serving_batch_requests_sum", ())] == 4
    assert samples[("privatemodel_serving_batch_rows_sum", ())] == sum(counts)
    assert steps == len(endpoint.server.batches) < 4
    assert samples[("privatemodel_serving_queueing_delay_seconds_count", ())] == 4


def test_exactly_n_requests_under_concurrency(endpoint_factory):
    # Kept up after the N answers, so every late request is told 410 rather than finding no server.
    endpoint = endpoint_factory(num_requests=3, batch_wait=2.0, wait_after_complete=True)
    endpoint.ready = True
    replies = post_concurrently(endpoint, [{"id": rid(20 + index), "count": 1} for index in range(6)])
    statuses = sorted(status for status, _ in replies)
    assert statuses == [200, 200, 200, 410, 410, 410]
    assert len(endpoint.server.ids) == 3
    assert endpoint.status() == {"ready": True, "requestsServed": 3, "numRequests": 3, "completed": True}


def server_with(staged, failing_step):
    """A PrivateModelServer whose players are stand-ins: `staged` ids pass the check; a step fails
    on an id not staged, and as a vanished or changed input makes it when failing_step(ids) says so."""
    from privatemodel.runtime.serving import server as servers

    server = servers.PrivateModelServer(hostmap={})
    server.steps = []

    def refusals(requests):
        return {request_id: RequestError(f"{request_id} is not staged") for request_id, _ in requests if request_id not in staged}

    def run_step(requests):
        ids = [request_id for request_id, _ in requests]
        server.steps.append(ids)
        if failing_step(ids) or not staged.issuperset(ids):
            raise servers._StagedInputChanged("was deleted or expired before it ran")

    server.refusals, server._run_step = refusals, run_step
    return server


def test_a_request_deleted_during_its_step_is_refused_alone_and_the_others_run_again():
    staged = {rid(1), rid(2), rid(3)}

    def deleted_during_the_first_step(ids):
        if len(server.steps) == 1:
            staged.discard(rid(2))
            return True
        return False

    server = server_with(staged, deleted_during_the_first_step)
    refused = server.run_batch([(rid(1), 1), (rid(2), 2), (rid(3), 1)])
    assert list(refused) == [rid(2)] and "not staged" in str(refused[rid(2)])
    assert server.steps == [[rid(1), rid(2), rid(3)], [rid(1), rid(3)]]


def test_a_step_failure_the_check_cannot_explain_is_pinned_on_its_request_by_running_each_alone():
    server = server_with({rid(1), rid(2), rid(3)}, lambda ids: rid(2) in ids)
    refused = server.run_batch([(rid(1), 1), (rid(2), 1), (rid(3), 1)])
    assert list(refused) == [rid(2)] and str(refused[rid(2)]) == f"request {rid(2)} was deleted or expired before it ran"
    assert server.steps == [[rid(1), rid(2), rid(3)], [rid(1)], [rid(2)], [rid(3)]]


def test_a_batch_staged_right_is_one_call_to_the_players_and_a_request_never_staged_is_refused_alone():
    checked = []
    server = server_with({rid(1), rid(2)}, lambda ids: False)
    original_refusals = server.refusals
    server.refusals = lambda requests: checked.append(requests) or original_refusals(requests)
    assert server.run_batch([(rid(1), 1), (rid(2), 3)]) == {}
    assert server.steps == [[rid(1), rid(2)]] and checked == []

    refused = server.run_batch([(rid(1), 1), (rid(9), 1), (rid(2), 1)])
    assert list(refused) == [rid(9)] and "not staged" in str(refused[rid(9)])
    assert server.steps[1:] == [[rid(1), rid(9), rid(2)], [rid(1), rid(2)]] and len(checked) == 1
