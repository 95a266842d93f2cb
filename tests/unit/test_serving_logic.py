"""The serving endpoint's own logic (queueing, counting, refusing), with a stand-in for the MPC."""
import json
import threading
import urllib.error
import urllib.request

import pytest

from privatemodel.runtime.serving.endpoint import ServingEndpoint
from privatemodel.runtime.serving.server import RequestError, batch_buckets


def test_batch_buckets():
    assert batch_buckets(1) == [1]
    assert batch_buckets(64) == [1, 2, 4, 8, 16, 32, 64]
    assert batch_buckets(48) == [1, 2, 4, 8, 16, 32, 48]


class RecordingServer:
    """Stands in for PrivateModelServer: records keys, rejects count 13 like a bad request."""

    def __init__(self):
        self.keys = []

    def predict(self, key, count):
        if count == 13:
            raise RequestError("count 13 is unlucky")
        self.keys.append(key)


@pytest.fixture
def endpoint_factory():
    started = []

    def make(**options):
        endpoint = ServingEndpoint(RecordingServer(), port=0, host="127.0.0.1", **options)
        endpoint.start_http()
        runner = threading.Thread(target=endpoint.run, daemon=True)
        runner.start()
        started.append((endpoint, runner))
        return endpoint

    yield make
    for endpoint, runner in started:
        endpoint.finished.set()
        runner.join(10)


def call(endpoint, path, body=None):
    url = f"http://127.0.0.1:{endpoint.port}{path}"
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_not_ready_until_told(endpoint_factory):
    endpoint = endpoint_factory()
    assert call(endpoint, "/healthz") == (503, {"ready": False})
    assert call(endpoint, "/v1/predict", {"key": "1", "count": 1})[0] == 503
    endpoint.ready = True
    assert call(endpoint, "/healthz") == (200, {"ready": True})


def test_bad_requests_are_refused_and_serving_goes_on(endpoint_factory):
    endpoint = endpoint_factory()
    endpoint.ready = True
    assert call(endpoint, "/v1/predict", b"{oops")[0] == 400
    assert call(endpoint, "/v1/predict", {"count": 1})[0] == 400
    status, body = call(endpoint, "/v1/predict", {"key": "5", "count": 13})
    assert status == 400 and "unlucky" in body["error"]
    assert call(endpoint, "/v1/predict", {"key": "6", "count": 1}) == (200, {"ok": True})
    assert endpoint.server.keys == [6]
    assert call(endpoint, "/status")[1]["requestsServed"] == 1


def test_exactly_n_requests_then_finished(endpoint_factory):
    endpoint = endpoint_factory(num_requests=2)
    endpoint.ready = True
    assert call(endpoint, "/v1/predict", {"key": "1", "count": 1})[0] == 200
    assert call(endpoint, "/v1/predict", {"key": "2", "count": 1})[0] == 200
    assert endpoint.finished.wait(5)
    assert endpoint.status() == {"ready": True, "requestsServed": 2, "numRequests": 2, "completed": True}


def test_wait_after_complete_refuses_more_but_stays_up(endpoint_factory):
    endpoint = endpoint_factory(num_requests=1, wait_after_complete=True)
    endpoint.ready = True
    assert call(endpoint, "/v1/predict", {"key": "1", "count": 1})[0] == 200
    status, body = call(endpoint, "/v1/predict", {"key": "2", "count": 1})
    assert status == 410 and "answered all its requests" in body["error"]
    assert not endpoint.finished.is_set()
    assert call(endpoint, "/status")[1]["completed"] is True
