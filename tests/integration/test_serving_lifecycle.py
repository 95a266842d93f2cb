"""Serving's life: exactly N answers, a clean stop on SIGTERM, and the commands around it."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import numpy as np

from integration.support import assert_matches_plaintext, https_call, run_cli
from privatemodel.runtime.local.cluster import LocalServing


def status_of(cluster, url):
    return https_call(cluster, f"{url}/status")[1]


def predict_cli(cluster, url, path):
    """`url` is the serving the cluster's access file names (LocalServing.start writes it)."""
    assert cluster.access_path.read_text().count(url) == 1
    return run_cli("predict", "--access", str(cluster.access_path), "--input", str(path), "--json")


def test_serve_answers_exactly_n_requests_then_exits_0(cluster, shared, reference_model, tmp_path):
    np.save(tmp_path / "digit.npy", reference_model["x"][3])
    serving = LocalServing(cluster)
    serving.start(num_requests=2)
    try:
        for _ in range(2):
            result = predict_cli(cluster, serving.url, tmp_path / "digit.npy")
            assert result.returncode == 0, result.stderr
            assert_matches_plaintext(json.loads(result.stdout)["logits"], reference_model["plaintext"][3:4])
        assert serving.wait(timeout=30) == 0
        third = predict_cli(cluster, serving.url, tmp_path / "digit.npy")
        assert third.returncode == 3
        assert f"serve at {serving.url} is unreachable" in third.stderr
    finally:
        serving.stop()


def test_wait_after_complete_reports_completion_and_stays_up(cluster, shared, reference_model, tmp_path):
    np.save(tmp_path / "digit.npy", reference_model["x"][4])
    serving = LocalServing(cluster)
    serving.start(num_requests=1, extra_args=["--wait-after-complete"])
    try:
        assert predict_cli(cluster, serving.url, tmp_path / "digit.npy").returncode == 0
        refused = predict_cli(cluster, serving.url, tmp_path / "digit.npy")
        assert refused.returncode == 3 and "(410): this model has answered all its requests" in refused.stderr
        assert status_of(cluster, serving.url) == {"ready": True, "requestsServed": 1, "numRequests": 1, "completed": True}
        assert serving.process.pid is not None
    finally:
        serving.stop()


def test_sigterm_stops_serving_with_exit_0(cluster, shared):
    serving = LocalServing(cluster)
    serving.start()
    os.kill(serving.process.pid, signal.SIGTERM)
    assert serving.wait(timeout=30) == 0
    assert "stopped after 0 request(s)" in serving.process.log_file.read_text()


def test_local_players_up_status_down(tmp_path):
    directory = str(tmp_path / "local")
    up = run_cli("local", "up", "--dir", directory)
    assert up.returncode == 0, up.stderr
    status = json.loads(run_cli("local", "status", "--dir", directory).stdout)
    pids = [player["pid"] for player in status.values()]
    assert all(player["listening"] for player in status.values()) and all(pids)
    again = run_cli("local", "up", "--dir", directory)
    assert "already running" in again.stderr
    assert [p["pid"] for p in json.loads(run_cli("local", "status", "--dir", directory).stdout).values()] == pids

    down = run_cli("local", "down", "--dir", directory)
    assert down.stdout.strip() == "stopped server0, server1, server2"
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split(") ")[1][0] == "Z"
    assert run_cli("local", "down", "--dir", directory).stdout.strip() == "no local players were running"


def test_manual_mode_prints_a_command_per_host():
    result = run_cli("local", "up", "--manual", "alice.example,bob.example,carol.example,dave.example")
    assert result.returncode == 0, result.stderr
    assert '"server1": "bob.example:4450"' in result.stdout
    assert '"serve": "dave.example:4452"' in result.stdout
    assert "on carol.example:  privatemodel player server2 --config hostmap.json --tls-dir certs/server2" in result.stdout
    assert "--tls-dir certs/server0 --ingress-port 8443" in result.stdout


def test_notebook_api(reference_model, tmp_path):
    """The Syft-Keras-style API, in its own process as a notebook would be."""
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        import privatemodel as pm
        cluster = pm.LocalCluster({str(tmp_path / "api")!r}).start()
        try:
            model = pm.PrivateModel(tf.keras.models.load_model({str(reference_model["path"])!r}, compile=False))
            model.share(cluster)
            model.serve(num_requests=1)
            logits = pm.Client(cluster).query(np.load({str(tmp_path / "x.npy")!r}))
            print(repr(logits.tolist()))
            assert model.wait(timeout=30) == 0
            model.stop()
        finally:
            cluster.stop()
    """)
    np.save(tmp_path / "x.npy", reference_model["x"][:2])
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert_matches_plaintext(eval(result.stdout.strip().splitlines()[-1]), reference_model["plaintext"][:2])


def test_demo_runs_end_to_end_and_leaves_no_process(tmp_path):
    directory = str(tmp_path / "demo")
    result = subprocess.run([sys.executable, "-m", "privatemodel", "demo", "--dir", directory],
                            capture_output=True, text=True, timeout=600, env={**os.environ, "XDG_CACHE_HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    assert "3/3 private classes match plaintext Keras" in result.stdout
    assert processes_mentioning(directory) == []


def processes_mentioning(text):
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if text.encode() in cmdline.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found
