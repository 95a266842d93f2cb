"""Private predictions through real players, compared with plaintext Keras."""
import json
import subprocess
import threading
import time

import numpy as np
from PIL import Image

from integration.support import assert_matches_plaintext, run_cli
from privatemodel.runtime.local.cluster import privatemodel_command


def test_private_logits_match_plaintext_on_100_digits(client, reference_model):
    x, plaintext = reference_model["x"][:100], reference_model["plaintext"][:100]
    private = np.concatenate([client.predict(x[start : start + 25]) for start in range(0, 100, 25)])
    assert_matches_plaintext(private, plaintext)


def test_the_client_says_where_its_time_went(client, reference_model):
    started = time.monotonic()
    client.predict(reference_model["x"][:2])
    elapsed_ms = 1000 * (time.monotonic() - started)
    phases = client.last_phases_ms
    assert list(phases) == ["stage", "run", "collect"]
    assert all(ms > 0 for ms in phases.values()) and sum(phases.values()) <= elapsed_ms


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
