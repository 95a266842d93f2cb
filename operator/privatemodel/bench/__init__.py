"""`make bench`: plaintext Keras vs privatemodel vs tf-encrypted's QueueServer, measured in one run,
then concurrent clients (serving's dynamic batching, bench/concurrency.py), then private accuracy
against Keras over the held-out digits (bench/accuracy.py).

Everything runs on this machine: three players, the serving process and the client, first over
loopback, then (as root) with each party in its own network namespace and the players joined by
the TLS mesh, as on several hosts. Results are printed as a table and written as JSON.
"""
import json
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from privatemodel.bench.accuracy import measure_accuracy
from privatemodel.bench.breakdown import layer_breakdown
from privatemodel.bench.breakdown import table as breakdown_table
from privatemodel.bench.concurrency import bench_concurrency, concurrency_table
from privatemodel.runtime import reference
from privatemodel.runtime.local.cluster import LocalCluster, LocalServing

log = logging.getLogger(__name__)

LARGE_BATCH = 32


def run_bench(output: Path, requests: int, only: str | None = None, batch_wait_ms: float | None = None) -> dict:
    """Everything, or with only="concurrency" just the concurrent clients (a minute or two)."""
    import tensorflow as tf

    model_path = reference.trained_model_path()
    x_test = reference.load_digits()[2]
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "tensorflow": tf.__version__},
        "requests": requests,
        "large_batch": LARGE_BATCH,
    }
    if only is None:
        results["plaintext"] = _bench_plaintext(model_path, x_test, requests)
    with tempfile.TemporaryDirectory(prefix="privatemodel-bench-") as scratch:
        cluster = LocalCluster(scratch)
        try:
            cluster.up()
            started_rss = _players_rss(cluster)
            subprocess.run(cluster.share_command(model_path), check=True)
            if only is None:
                results["privatemodel"] = _bench_private(cluster, x_test, requests, started_rss)
                results["baseline_tfe_queueserver"] = _bench_baseline(cluster, model_path, requests)
            results["concurrency"] = bench_concurrency(cluster, model_path, x_test, batch_wait_ms)
        finally:
            cluster.down()
    if only is not None:
        return _write(output, results, concurrency_table(results["concurrency"]))
    results["breakdown_batch_1"] = layer_breakdown(model_path, batch_size=1)
    if os.geteuid() == 0:
        with tempfile.TemporaryDirectory(prefix="privatemodel-bench-mesh-") as scratch:
            cluster = LocalCluster(scratch, isolated=True)
            try:
                cluster.up()
                subprocess.run(cluster.share_command(model_path), check=True)
                results["privatemodel_mesh"] = _bench_private(cluster, x_test, requests)
            finally:
                cluster.down()
    else:
        log.warning("not root: the TLS mesh configuration (network namespaces) is not measured")
    results["accuracy"] = measure_accuracy()
    return _write(output, results, "\n\n".join([
        _table(results), concurrency_table(results["concurrency"]), breakdown_table(results["breakdown_batch_1"]),
        _phases_and_memory_table(results["privatemodel"])]))


def _write(output, results, table):
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(results, indent=2) + "\n")
    print(table)
    print(f"\nwritten to {output}")
    return results


def _bench_plaintext(model_path, x_test, requests):
    import tensorflow as tf

    model = tf.keras.models.load_model(model_path, compile=False)
    predict = tf.function(model)
    one, large = x_test[:1], x_test[:LARGE_BATCH]
    started = time.perf_counter()
    predict(one)
    first = time.perf_counter() - started
    latencies = _timed(lambda: predict(one).numpy(), requests)
    large_latencies = _timed(lambda: predict(large).numpy(), max(5, requests // 5))
    return _summary(first, latencies, large_latencies, rss_mb={"client": _rss_mb(os.getpid())})


def _bench_private(cluster, x_test, requests, started_rss=None):
    from privatemodel.runtime.client.client import PrivateClient

    serving = LocalServing(cluster)
    shared = _players_rss(cluster)
    started = time.perf_counter()
    serving.start(extra_args=["--warm-up", f"1,{LARGE_BATCH}"])
    time_to_ready = time.perf_counter() - started
    warm = _players_rss(cluster)
    try:
        started = time.perf_counter()
        client = PrivateClient(cluster.access_path)
        connect = time.perf_counter() - started
        one, large = x_test[:1], x_test[:LARGE_BATCH]
        started = time.perf_counter()
        client.predict(one)
        first = time.perf_counter() - started
        phases = []

        def predict_one():
            client.predict(one)
            phases.append(client.last_phases_ms)

        latencies = _timed(predict_one, requests)
        after_batch_1 = _players_rss(cluster)
        large_latencies = _timed(lambda: client.predict(large), max(5, requests // 5))
        after_large = _players_rss(cluster)
        rss = dict(after_large, serve=_rss_mb(serving.process.pid), client=_rss_mb(os.getpid()))
    finally:
        serving.stop()
    summary = _summary(first, latencies, large_latencies, rss_mb=rss)
    summary.update(time_to_ready_s=time_to_ready, client_connect_s=connect)
    # Where a batch-1 prediction's time goes, as the client sees it (client.PHASES).
    summary["client_phases_p50_ms"] = {phase: float(np.median([p[phase] for p in phases])) for phase in phases[0]}
    summary["players_rss_mb_by_stage"] = {**({"started": started_rss} if started_rss else {}), "shared": shared, f"warm (batch 1 and {LARGE_BATCH} compiled)": warm,
                                          "after batch 1": after_batch_1, f"after batch {LARGE_BATCH}": after_large}
    return summary


def _players_rss(cluster) -> dict:
    return {name: _rss_mb(process.pid) for name, process in cluster.players.items()}


def _bench_baseline(cluster, model_path, requests):
    def command(role, batch, count):
        return [sys.executable, "-m", "privatemodel.bench.baseline", role, "--config", str(cluster.hostmap_path),
                "--model", str(model_path), "--batch", str(batch), "--requests", str(count)]

    def run(batch, count):
        started = time.perf_counter()
        server = subprocess.Popen(command("server", batch, count), stdout=subprocess.PIPE, text=True)
        try:
            if server.stdout.readline().strip() != "ready":
                raise RuntimeError("the baseline QueueServer failed to start")
            ready = time.perf_counter() - started
            # Started together, its server and client hang; the client must come after.
            time.sleep(2)
            client = subprocess.Popen(command("client", batch, count), stdout=subprocess.PIPE, text=True)
            # The server exits after its last answer: sample its RSS while it serves, keep the peak.
            rss = 0.0
            while client.poll() is None:
                rss = max(rss, _rss_mb(server.pid) or 0.0)
                time.sleep(0.2)
            output = client.stdout.read()
            if client.returncode != 0:
                raise RuntimeError(f"the baseline QueueClient failed (exit {client.returncode})")
            server.wait(timeout=120)
        finally:
            server.kill()
        return ready, rss, json.loads(output.strip().splitlines()[-1])

    ready, rss, one = run(1, requests)
    _, _, large = run(LARGE_BATCH, max(5, requests // 5))
    summary = _summary(one["first"], one["latencies"], large["latencies"], rss_mb={"server": rss})
    summary["time_to_ready_s"] = ready
    return summary


def _timed(call, count):
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        call()
        latencies.append(time.perf_counter() - started)
    return latencies


def _summary(first, latencies, large_latencies, rss_mb):
    return {
        "first_request_s": first,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p95_ms": 1000 * float(np.percentile(latencies, 95)),
        "throughput_batch1_per_s": len(latencies) / sum(latencies),
        "throughput_large_batch_per_s": LARGE_BATCH * len(large_latencies) / sum(large_latencies),
        "rss_mb": rss_mb,
    }


def _rss_mb(pid):
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _table(results):
    plain, private, base = results["plaintext"], results["privatemodel"], results["baseline_tfe_queueserver"]
    mesh = results.get("privatemodel_mesh")
    rows = [
        ("p50 latency, batch 1 (ms)", "p50_ms", "{:.1f}"),
        ("p95 latency, batch 1 (ms)", "p95_ms", "{:.1f}"),
        ("throughput, batch 1 (/s)", "throughput_batch1_per_s", "{:.1f}"),
        (f"throughput, batch {LARGE_BATCH} (/s)", "throughput_large_batch_per_s", "{:.1f}"),
        ("first request (s)", "first_request_s", "{:.2f}"),
    ]
    lines = [f"{'':32} {'plaintext':>10} {'private':>10} {'tfe queue':>10} {'private/plain':>14} {'private/tfe':>12}"
             + (f" {'mesh (TLS)':>10} {'mesh/private':>13}" if mesh else "")]
    for label, key, fmt in rows:
        p, q, b = plain[key], private[key], base[key]
        line = f"{label:32} {fmt.format(p):>10} {fmt.format(q):>10} {fmt.format(b):>10} {q / p:>13.1f}x {q / b:>11.2f}x"
        if mesh:
            line += f" {fmt.format(mesh[key]):>10} {mesh[key] / q:>12.2f}x"
        lines.append(line)
    lines.append(f"{'time to ready (s)':32} {'':>10} {private['time_to_ready_s']:>10.1f} {base['time_to_ready_s']:>10.1f}"
                 + (f" {mesh['time_to_ready_s']:>10.1f}" if mesh else ""))
    rss = ", ".join(f"{name} {mb:.0f}" for name, mb in private["rss_mb"].items() if mb)
    lines.append(f"RSS (MB), private: {rss}; tfe QueueServer server {base['rss_mb']['server'] or 0:.0f}")
    return "\n".join(lines)


def _phases_and_memory_table(private) -> str:
    phases = ", ".join(f"{phase} {ms:.1f} ms" for phase, ms in private["client_phases_p50_ms"].items())
    lines = [f"batch-1 prediction as the client sees it (p50): {phases}", "players' RSS (MB) by stage:"]
    for stage, rss in private["players_rss_mb_by_stage"].items():
        lines.append(f"  {stage:36} " + ", ".join(f"{name} {mb:.0f}" for name, mb in rss.items() if mb))
    return "\n".join(lines)
