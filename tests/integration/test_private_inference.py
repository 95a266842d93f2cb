"""Private predictions through real players, compared with plaintext Keras."""
import json
import subprocess
import threading

import numpy as np
import pytest
from PIL import Image

from integration.support import assert_matches_plaintext, https_call, run_cli
from privatemodel.runtime.client.client import QueryError, ServingError
from privatemodel.runtime.local.cluster import privatemodel_command


def test_private_logits_match_plaintext_on_100_digits(client, reference_model):
    x, plaintext = reference_model["x"][:100], reference_model["plaintext"][:100]
    private = np.concatenate([client.predict(x[start : start + 25]) for start in range(0, 100, 25)])
    assert_matches_plaintext(private, plaintext)


def test_predict_command_reads_png_and_prints_json(cluster, serving, reference_model, tmp_path):
    digit = reference_model["x"][7]
    Image.fromarray((digit[..., 0] * 255).round().astype(np.uint8)).save(tmp_path / "digit.png")
    np.save(tmp_path / "digit.npy", digit)
    result = run_cli("predict", "--access", str(cluster.access_path),
                     "--input", str(tmp_path / "digit.png"), str(tmp_path / "digit.npy"), "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    expected = reference_model["plaintext"][7].argmax()
    assert answer["classes"] == [expected, expected]
    assert_matches_plaintext(answer["logits"][1:], reference_model["plaintext"][7:8])


def test_concurrent_clients_each_get_their_own_answer(client, cluster, serving, reference_model, tmp_path):
    x, plaintext = reference_model["x"], reference_model["plaintext"]
    # Two client processes at once...
    for index in (11, 12):
        np.save(tmp_path / f"{index}.npy", x[index])
    processes = {
        index: subprocess.Popen(
            privatemodel_command("predict", "--access", str(cluster.access_path),
                                 "--input", str(tmp_path / f"{index}.npy"), "--json"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for index in (11, 12)
    }
    # ...while eight threads of this process query other digits.
    answers = {}

    def ask(index):
        answers[index] = client.predict(x[index])[0]

    threads = [threading.Thread(target=ask, args=(index,)) for index in range(20, 28)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for index, process in processes.items():
        out, err = process.communicate(timeout=180)
        assert process.returncode == 0, err
        answers[index] = np.array(json.loads(out)["logits"][0])
    indices = sorted(answers)
    assert indices == [11, 12] + list(range(20, 28))
    assert_matches_plaintext([answers[i] for i in indices], plaintext[indices])


@pytest.mark.parametrize("query, message", [
    (np.zeros((28, 28)), r"query shape \(28, 28\) does not fit the model input \(28, 28, 1\)"),
    (np.zeros((2, 28, 28, 3)), r"query shape \(2, 28, 28, 3\)"),
    (np.array([["a"] * 28] * 28), "query dtype <U1 is not numeric"),
    (np.full((28, 28, 1), np.nan), "query has 784 NaN or infinite value"),
    (np.full((1, 28, 28, 1), np.inf), "NaN or infinite"),
    (np.full((1, 28, 28, 1), 1e9), "fixed-point range"),
])
def test_bad_queries_are_refused_before_anything_is_sent(client, reference_model, query, message):
    with pytest.raises(QueryError, match=message):
        client.predict(query)
    assert_matches_plaintext(client.predict(reference_model["x"][:1]), reference_model["plaintext"][:1])


def test_bad_requests_reaching_the_servers_get_an_error_and_serving_goes_on(client, cluster, reference_model):
    # A client that skips its own checks: a wrongly shaped share, a batch beyond the limit, an id never staged.
    token = {"Authorization": "Bearer " + "t" * 32, "Content-Type": "application/octet-stream"}
    wrong = np.zeros((1, 27, 27, 1), np.int64).tobytes()
    status, body = https_call(cluster, cluster.ingress_url("server0") + "/v2/requests/" + "a" * 32 + "/input", "PUT", wrong,
                              {**token, "X-Batch-Size": "1"})
    assert status == 400 and "a share of 1 input(s) of shape (28, 28, 1) is 6272 bytes of int64, got 5832" in body["error"]
    with pytest.raises(ServingError, match=r"\(400\): count must be an integer from 1 to 64, got 65"):
        client.serving.request("POST", "/v1/predict", json.dumps({"id": "b" * 32, "count": 65}).encode())
    with pytest.raises(ServingError, match=r"\(400\): request c{32} is not staged on server0, server1"):
        client.serving.request("POST", "/v1/predict", json.dumps({"id": "c" * 32, "count": 1}).encode())
    assert_matches_plaintext(client.predict(reference_model["x"][:3]), reference_model["plaintext"][:3])
