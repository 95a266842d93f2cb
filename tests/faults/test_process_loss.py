"""Processes lost while serving: a player killed mid-request, serving killed mid-request, no shares.

The client in flight gets a clear error within a deadline, the commands name the lost process, and
nothing waits for ever.
"""
import os
import signal
import threading
import time

import numpy as np
import pytest

from faults.outcomes import CLEAR, cli_error
from integration.support import assert_matches_plaintext, local_players, run_cli
from privatemodel.runtime.client.client import PrivateClient, ServingError
from privatemodel.runtime.serving.server import UNUSED_SLOT_ID, WARM_UP_ID

# Batch 32 is not warmed up: its first request traces its graph for seconds, time to kill a process.
SLOW_BATCH = 32
CLIENT_DEADLINE = 60.0


@pytest.fixture(scope="module")
def cluster_without_shares(tmp_path_factory):
    with local_players(tmp_path_factory.mktemp("no-shares")) as players:
        yield players


def test_serve_without_shares_says_so(cluster_without_shares, faults):
    cluster = cluster_without_shares
    serve = lambda: cli_error(run_cli("serve", "--config", str(cluster.hostmap_path), "--port", "0",  # noqa: E731
                                      "--tls-dir", str(cluster.tls_dir("serve"))))
    outcome = faults.attempt("serve before anything was shared", serve,
                             rf"exit 2: error: no model shares on player server0 at {cluster.hostmap['server0']}: run `privatemodel share` first", deadline=120)
    assert outcome.kind == CLEAR, outcome


def predict_in_background(cluster, x):
    """A client's request in its own thread: (thread, {"error" or "answer"})."""
    result = {}
    client = PrivateClient(cluster.access_path, timeout=CLIENT_DEADLINE)

    def run():
        try:
            result["answer"] = client.predict(x)
        except ServingError as error:
            result["error"] = str(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def wait_for_request_in_flight(cluster):
    """Until the client has staged its query on both holders (serving then runs or queues it)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        staged = [list((cluster.state_dir(holder) / "requests").glob("[0-9a-f]*.in")) for holder in ("server0", "server1")]
        if all(staged):
            time.sleep(1.0)  # serving has the request and is tracing the batch's graph
            return
        time.sleep(0.05)
    raise TimeoutError("the client's request never reached both holders")


def in_flight_error(thread, result):
    """What the client in flight was told, once it gave up (the attempt's deadline bounds this)."""
    thread.join()
    return result.get("error")


@pytest.mark.parametrize("victim", ["server1", "server2"])
def test_a_player_killed_mid_request_is_named_to_the_client_and_by_every_command(serving_cluster, reference_model, tmp_path, faults, victim):
    cluster, serving = serving_cluster
    address = cluster.hostmap[victim]
    thread, result = predict_in_background(cluster, reference_model["x"][:SLOW_BATCH])
    wait_for_request_in_flight(cluster)
    os.kill(cluster.players[victim].pid, signal.SIGKILL)

    outcome = faults.attempt(f"{victim} killed (SIGKILL) while a request runs: the client in flight", lambda: in_flight_error(thread, result),
                             rf"player {victim} at {address} is unreachable", deadline=CLIENT_DEADLINE + 10)
    assert outcome.kind == CLEAR, outcome
    lost = f"player {victim} at {address} is unreachable"
    outcome = faults.attempt(f"{victim} killed: serve", lambda: f"exit {serving.wait(timeout=60)}: {serving.process.log_tail(1)}",
                             rf"exit 3: error: {lost}", deadline=70)
    assert outcome.kind == CLEAR, outcome

    config = str(cluster.hostmap_path)
    np.save(tmp_path / "digit.npy", reference_model["x"][0])
    for command, args in (
        ("share", ["share", "--model", str(reference_model["path"]), "--config", config]),
        ("serve", ["serve", "--config", config, "--port", "0", "--tls-dir", str(cluster.tls_dir("serve"))]),
    ):
        outcome = faults.attempt(f"{victim} killed: then {command}", lambda: cli_error(run_cli(*args, timeout=120)),
                                 rf"exit 3: error: {lost}", deadline=130)
        assert outcome.kind == CLEAR, outcome
    # The client knows the ingresses and serving only: it names the first of them that is gone.
    gone = (rf"server1 at {cluster.ingress_url('server1')} is unreachable" if victim == "server1"
            else rf"serve at {serving.url} is unreachable")
    predict = lambda: cli_error(run_cli("predict", "--access", str(cluster.access_path), "--input", str(tmp_path / "digit.npy"), timeout=120))  # noqa: E731
    outcome = faults.attempt(f"{victim} killed: then predict", predict, rf"exit 3: error: {gone}", deadline=130)
    assert outcome.kind == CLEAR, outcome


def test_serve_killed_mid_request_leaves_nothing_staged_and_a_restart_serves(serving_cluster, reference_model, faults):
    cluster, serving = serving_cluster
    files_before = sorted(p.name for p in (cluster.state_dir("server0") / "requests").iterdir())
    thread, result = predict_in_background(cluster, reference_model["x"][:SLOW_BATCH])
    wait_for_request_in_flight(cluster)
    os.kill(serving.process.pid, signal.SIGKILL)

    outcome = faults.attempt("serve killed (SIGKILL) while a request runs: the client in flight", lambda: in_flight_error(thread, result),
                             rf"serve at {serving.url} is unreachable", deadline=CLIENT_DEADLINE + 10)
    assert outcome.kind == CLEAR, outcome
    # The client dropped its staged shares on the way out; a restarted serve answers, and its
    # warm-up leaves no more files behind than the first one did.
    serving.start()
    assert sorted(p.name for p in (cluster.state_dir("server0") / "requests").iterdir()) == files_before
    assert all(name.startswith((WARM_UP_ID, UNUSED_SLOT_ID)) for name in files_before)
    client = PrivateClient(cluster.access_path)
    assert_matches_plaintext(client.predict(reference_model["x"][:2]), reference_model["plaintext"][:2])
