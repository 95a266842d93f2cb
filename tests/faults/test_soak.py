"""Soak: thousands of batch-1 predictions from 8 concurrent clients, some of them aborted on the way.

Every answer returned must match plaintext Keras, and each player's memory must stay flat (±10% of
what it held after a warm-up).
"""
import random
import secrets
import threading
import time

import numpy as np

from faults import outcomes, wire
from faults.outcomes import ANSWERED, HUNG
from privatemodel.runtime.client.client import PrivateClient, ServingError

CLIENTS = 8
WARM_UP_PREDICTIONS = 200
SOAK_PREDICTIONS = 2000
ABORT_RATE = 0.04
RSS_TOLERANCE = 0.10
MAX_ERRORS = 20
SOAK_DEADLINE = 600.0  # ~20 predictions/s: 100 s expected


def rss_kib(pid) -> int:
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def abort_one(kind, client, cluster, serving_url, x):
    """A request given up on the way: staged and abandoned, or cut off after asking serving."""
    if kind == "abandon staged shares":
        wire.stage(client, x)
    elif kind == "stage on server0 only":
        token = secrets.token_urlsafe(32)
        client.holders[0].request("PUT", f"/v2/requests/{secrets.token_hex(16)}/input", body=np.zeros(x.shape, "<i8").tobytes(),
                                  headers={"Authorization": f"Bearer {token}", "X-Batch-Size": "1"})
    else:
        wire.post_and_reset(cluster, serving_url, client, wire.stage(client, x))


ABORTS = ("abandon staged shares", "stage on server0 only", "reset after POST /v1/predict")


def run_clients(cluster, serving_url, x_all, predictions, seed):
    """`predictions` answers from CLIENTS threads: ([(digit index, logits)], [abort kinds], [errors])."""
    answers, errors, aborted = [], [], []
    lock = threading.Lock()
    per_client = predictions // CLIENTS

    def one_client(number):
        client = PrivateClient(cluster.access_path)
        rng = random.Random(seed * 100 + number)
        answered = 0
        while answered < per_client:
            index = rng.randrange(len(x_all))
            x = x_all[index:index + 1]
            try:
                if rng.random() < ABORT_RATE:
                    kind = rng.choice(ABORTS)
                    abort_one(kind, client, cluster, serving_url, x)
                    with lock:
                        aborted.append(kind)
                    continue
                logits = client.predict(x)[0]
            except ServingError as error:
                with lock:
                    errors.append(str(error))
                    if len(errors) > MAX_ERRORS:
                        return  # serving is down: no use spinning until the deadline
                continue
            answered += 1
            with lock:
                answers.append((index, logits))

    threads = [threading.Thread(target=one_client, args=(number,), daemon=True) for number in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers, aborted, errors


def test_soak_of_2000_predictions_from_8_clients_with_aborts(cluster, serving, reference_model, faults):
    x_all, plaintext = reference_model["x"], reference_model["plaintext"]
    players = {name: process.pid for name, process in cluster.players.items()}

    run_clients(cluster, serving.url, x_all, WARM_UP_PREDICTIONS, seed=1)
    baseline = {name: rss_kib(pid) for name, pid in players.items()}
    baseline["serve"] = rss_kib(serving.process.pid)

    result = {}
    soak = threading.Thread(target=lambda: result.update(zip(("answers", "aborted", "errors"),
                                                             run_clients(cluster, serving.url, x_all, SOAK_PREDICTIONS, seed=2))),
                            daemon=True)
    started = time.monotonic()
    soak.start()
    soak.join(SOAK_DEADLINE)
    seconds = time.monotonic() - started
    tried = f"soak: {SOAK_PREDICTIONS} batch-1 predictions from {CLIENTS} clients, {ABORT_RATE:.0%} aborted"
    if soak.is_alive():
        faults.record(tried, HUNG, f"not done within {SOAK_DEADLINE:.0f} s")
        raise AssertionError(f"the soak did not finish within {SOAK_DEADLINE:.0f} s")
    after = {name: rss_kib(pid) for name, pid in players.items()}
    after["serve"] = rss_kib(serving.process.pid)

    answers, aborted, errors = result["answers"], result["aborted"], result["errors"]
    indices = [index for index, _ in answers]
    outcome = faults.record_service(tried, np.array([logits for _, logits in answers]), plaintext[indices], errors)
    kinds = ", ".join(f"{aborted.count(kind)} {kind}" for kind in ABORTS)
    outcomes.NOTES.append(
        f"soak: {len(answers)} predictions from {CLIENTS} clients in {seconds:.0f} s ({len(answers) / seconds:.1f}/s), "
        f"{len(aborted)} aborted ({kinds}), {len(errors)} errors"
    )
    outcomes.NOTES.append("soak: RSS after warm-up -> after soak (MiB): " + ", ".join(
        f"{name} {baseline[name] / 1024:.0f} -> {after[name] / 1024:.0f} ({(after[name] - baseline[name]) / baseline[name]:+.1%})"
        for name in baseline))
    assert outcome.kind == ANSWERED, outcome
    assert len(answers) == SOAK_PREDICTIONS and aborted
    for name in players:
        assert abs(after[name] - baseline[name]) <= RSS_TOLERANCE * baseline[name], (name, baseline[name], after[name])
