"""The client over several player triples: which triple each request goes to, and the one retry on
the next triple when a triple is down. The HTTPS calls are stood in for; tests/e2e sends real ones."""
import copy

import numpy as np
import pytest

from privatemodel import contract
from privatemodel.runtime.client import client as client_module
from privatemodel.runtime.client.client import AccessError, PrivateClient, ServingError, access_triples, load_access

CA = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


def triple_access(prefix):
    return {"serving": f"https://{prefix}-serving:8443", "server0": f"https://{prefix}-ingress-server0:8443",
            "server1": f"https://{prefix}-ingress-server1:8443", "ca": CA}


OLD_ACCESS = triple_access("mnist")
SCALED_ACCESS = {**OLD_ACCESS, contract.ACCESS_TRIPLES: [triple_access("mnist"), triple_access("mnist-t1"),
                                                         triple_access("mnist-t2")]}
METADATA = {"shareId": "s", "inputShape": [2], "outputShape": [1], "encoding": {"scaling_factor": 1, "max_abs_value": 100},
            "maxBatch": 4}


@pytest.fixture
def triples(monkeypatch):
    """Stands in for each triple's HTTPS: `down` holds triples that fail, with the error they raise."""
    state = {"asked": [], "down": {}, "metadata_fetched": []}

    def refresh(self):
        state["metadata_fetched"].append(self.index)
        self.metadata = {**METADATA, "shareId": f"share-of-{self.index}"}
        return self.metadata

    def predict_on(self, triple, batch):
        state["asked"].append(triple.index)
        metadata = triple.metadata or triple.refresh_metadata()
        assert metadata["shareId"] == f"share-of-{triple.index}"  # its own sharing's id
        if triple.index in state["down"]:
            raise state["down"][triple.index]
        return np.full((len(batch), 1), triple.index, dtype=float)

    monkeypatch.setattr(client_module._Triple, "refresh_metadata", refresh)
    monkeypatch.setattr(client_module.PrivateClient, "_predict_on", predict_on)
    monkeypatch.setattr(client_module.ssl, "create_default_context", lambda cadata: None)
    return state


def test_an_access_file_from_before_scale_out_is_one_triple():
    assert access_triples(load_access(copy.deepcopy(OLD_ACCESS))) == [OLD_ACCESS]
    assert len(access_triples(load_access(copy.deepcopy(SCALED_ACCESS)))) == 3


@pytest.mark.parametrize("triples, problem", [
    ([], "must be a non-empty list"),
    ([{"serving": "https://a"}], r"triples\[0\] lacks server0, server1, ca"),
    ([{**OLD_ACCESS, "server1": "http://in-the-clear"}], r"triples\[0\]: server1 must be an https:// URL"),
])
def test_a_bad_triples_list_is_named(triples, problem):
    with pytest.raises(AccessError, match=problem):
        load_access({**OLD_ACCESS, contract.ACCESS_TRIPLES: triples})


def test_a_top_level_edited_apart_from_the_list_the_client_reads_is_named():
    # As a user pointing the file at node ports might: the top level edited, the list not.
    edited = {**copy.deepcopy(SCALED_ACCESS), "serving": "https://192.0.2.7:31443", "server0": "https://192.0.2.7:31444"}
    with pytest.raises(AccessError, match=r"serving, server0 at the top level differ from triples\[0\]"):
        load_access(edited)


def test_requests_take_turns_from_a_random_start(triples):
    client = PrivateClient(SCALED_ACCESS)
    answered = [int(client.predict(np.zeros(2))[0, 0]) for _ in range(6)]
    first = answered[0]
    assert answered == [(first + turn) % 3 for turn in range(6)]
    assert triples["asked"] == answered
    starts = {int(PrivateClient(SCALED_ACCESS).predict(np.zeros(2))[0, 0]) for _ in range(60)}
    assert starts == {0, 1, 2}  # (a fixed start would pile every new client onto one triple)


@pytest.mark.parametrize("error", [ServingError("unreachable", unreachable=True), ServingError("down", status=503)])
def test_a_triple_that_is_down_gets_the_request_once_more_on_the_next(triples, error):
    client = PrivateClient(SCALED_ACCESS)
    client._turns = iter([1])
    triples["down"] = {1: error}
    assert client.predict(np.zeros(2))[0, 0] == 2
    assert triples["asked"] == [1, 2] and client.last_triple == 2
    # Its metadata is fetched again before its next request: rebuilt, it holds a new sharing.
    assert client.triples[1].metadata is None


def test_only_one_retry_and_only_for_a_triple_that_is_down(triples):
    client = PrivateClient(SCALED_ACCESS)
    client._turns = iter([0])
    triples["down"] = {0: ServingError("down", status=503), 1: ServingError("down", status=503)}
    with pytest.raises(ServingError):
        client.predict(np.zeros(2))
    assert triples["asked"] == [0, 1]
    triples["asked"].clear()
    client._turns = iter([2])
    triples["down"] = {2: ServingError("refused", status=400)}  # a bad request is no reason to try elsewhere
    with pytest.raises(ServingError, match="refused"):
        client.predict(np.zeros(2))
    assert triples["asked"] == [2]


def test_a_single_triple_is_never_retried(triples):
    client = PrivateClient(OLD_ACCESS)
    triples["down"] = {0: ServingError("down", status=503)}
    with pytest.raises(ServingError):
        client.predict(np.zeros(2))
    assert triples["asked"] == [0]
