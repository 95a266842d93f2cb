"""Concurrent clients: 8 client processes, each with its own PrivateClient, send batch-1 requests
(each its own digit) to one serving, which coalesces them into MPC steps (dynamic batching).

Measured: predictions per second over the whole run, each request's latency as its client sees it,
the queueing delay and batch sizes from serving's own /metrics (the difference across the run),
the CPU time each process spent per prediction (all of them share this machine's cores), and every
answer against plaintext Keras on the same digit, so a mix-up between clients would show.
"""
import multiprocessing
import os
import ssl
import time
import urllib.request

import numpy as np

from privatemodel import contract
from privatemodel.runtime.local.cluster import LocalServing

CLIENTS = 8
# About 10 s of steady state: with 200, the clients' first connections (TLS handshakes on the same two
# cores) weighed on the result (96 /s, against 103-107 /s over 1000, 2026-12-06).
REQUESTS = 1000
# Every bucket 8 batch-1 clients can fill, compiled before the clock starts.
WARM_UP_SIZES = "1,2,4,8"


def bench_concurrency(cluster, model_path, x_test, batch_wait_ms=None, clients=CLIENTS, requests=REQUESTS) -> dict:
    import tensorflow as tf

    plaintext = tf.keras.models.load_model(model_path, compile=False).predict(x_test, verbose=0)
    extra_args = ["--warm-up", WARM_UP_SIZES] + (["--batch-wait-ms", str(batch_wait_ms)] if batch_wait_ms is not None else [])
    serving = LocalServing(cluster)
    serving.start(extra_args=extra_args)
    pids = {name: process.pid for name, process in cluster.players.items()}
    pids.update(serve=serving.process.pid)
    try:
        before, cpu_before = _scrape(serving), _cpu_seconds(pids)
        answers, latencies, clients_cpu, elapsed = _run_clients(cluster.access_path, x_test, clients, requests)
        after, cpu_after = _scrape(serving), _cpu_seconds(pids)
    finally:
        serving.stop()
    cpu_seconds = {name: cpu_after[name] - cpu_before[name] for name in pids} | {"clients": clients_cpu}
    indices = sorted(answers)
    private = np.stack([answers[index] for index in indices])
    expected = plaintext[[index % len(x_test) for index in indices]]
    return {
        "clients": clients,
        "requests": requests,
        "batch_wait_ms": batch_wait_ms,
        "answered": len(answers),
        "throughput_per_s": len(answers) / elapsed,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p95_ms": 1000 * float(np.percentile(latencies, 95)),
        **_serving_side(before, after),
        "cpu_ms_per_prediction": {name: 1000 * seconds / len(answers) for name, seconds in cpu_seconds.items()},
        "max_abs_logit_difference": float(np.abs(private - expected).max()),
        "argmax_agreement": float((private.argmax(axis=1) == expected.argmax(axis=1)).mean()),
    }


def _run_clients(access_path, x_test, clients, requests):
    """Client k sends requests k, k + clients, ... one after another; request i asks about digit i.
    Each client is a process of its own, as separate users' programs are: threads of one process
    would take turns on its interpreter lock, and the bench would measure that lock (8 threads:
    93 predictions/s, 2026-12-06) more than serving. Returns the answers, the latencies, the
    clients' CPU seconds, and the wall time from the start signal to the last answer."""
    context = multiprocessing.get_context("spawn")  # this process has TensorFlow's threads: no fork
    go, results = context.Event(), context.Queue()
    processes = [context.Process(target=_client_process, args=(access_path, x_test, first, clients, requests, go, results))
                 for first in range(clients)]
    for process in processes:
        process.start()
    try:
        ready = [results.get(timeout=120) for _ in processes]  # each has imported and connected
        if any(isinstance(message, str) for message in ready):
            raise RuntimeError(f"a client failed to start: {next(m for m in ready if isinstance(m, str))}")
        started = time.perf_counter()
        go.set()
        outcomes = [results.get(timeout=600) for _ in processes]
        elapsed = time.perf_counter() - started
    finally:
        for process in processes:
            process.join(timeout=30)
            if process.is_alive():
                process.kill()
    errors = [outcome for outcome in outcomes if isinstance(outcome, str)]
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    answers = {index: answer for outcome in outcomes for index, answer in outcome["answers"].items()}
    latencies = [latency for outcome in outcomes for latency in outcome["latencies"]]
    return answers, latencies, sum(outcome["cpu_seconds"] for outcome in outcomes), elapsed


def _client_process(access_path, x_test, first, clients, requests, go, results):
    """One client: connects, says it is ready, waits for the signal, then sends its requests."""
    from privatemodel.runtime.client.client import PrivateClient

    try:
        client = PrivateClient(access_path)  # fetches the model's metadata
    except Exception as error:  # noqa: BLE001 - reported by the parent
        results.put(f"client {first}: {error}")
        return
    results.put(None)
    go.wait()
    answers, latencies = {}, []
    cpu_before = time.process_time()
    try:
        for index in range(first, requests, clients):
            started = time.perf_counter()
            answers[index] = client.predict(x_test[index % len(x_test)])[0]
            latencies.append(time.perf_counter() - started)
    except Exception as error:  # noqa: BLE001 - reported by the parent
        results.put(f"client {first}: {error}")
        return
    results.put({"answers": answers, "latencies": latencies, "cpu_seconds": time.process_time() - cpu_before})


def _serving_side(before, after):
    """What serving measured during the run: queueing delay (mean exact, p95 as the histogram's
    bucket bound) and batch sizes (requests and rows per MPC step)."""
    def delta(name):
        return after[name] - before[name]

    steps = delta("privatemodel_serving_batch_requests_count")
    return {
        "mpc_steps": int(steps),
        "mean_batch_requests": delta("privatemodel_serving_batch_requests_sum") / steps,
        "mean_batch_rows": delta("privatemodel_serving_batch_rows_sum") / steps,
        "mean_queueing_ms": 1000 * delta("privatemodel_serving_queueing_delay_seconds_sum")
                            / delta("privatemodel_serving_queueing_delay_seconds_count"),
        "p95_queueing_ms_at_most": 1000 * _quantile_bound(before, after, "privatemodel_serving_queueing_delay_seconds", 0.95),
        "mean_mpc_step_ms": 1000 * delta("privatemodel_serving_mpc_step_duration_seconds_sum") / steps,
    }


def _quantile_bound(before, after, name, quantile):
    """The upper bound of the histogram bucket holding the quantile (of the run's observations)."""
    buckets = sorted((float(le), after[f"{name}_bucket{{le={le}}}"] - before[f"{name}_bucket{{le={le}}}"])
                     for le in _bucket_bounds(after, name))
    total = buckets[-1][1]
    return next(bound for bound, cumulative in buckets if cumulative >= quantile * total)


def _bucket_bounds(samples, name):
    prefix = f"{name}_bucket{{le="
    return [key[len(prefix):-1] for key in samples if key.startswith(prefix)]


def _cpu_seconds(pids) -> dict:
    """User and system CPU time each process has used so far (threads included)."""
    ticks = os.sysconf("SC_CLK_TCK")
    seconds = {}
    for name, pid in pids.items():
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        seconds[name] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    return seconds


def _scrape(serving) -> dict:
    """Serving's /metrics as {name or name{le=bound}: value}, histograms' buckets included."""
    from prometheus_client.parser import text_string_to_metric_families

    context = ssl.create_default_context(cafile=str(serving.cluster.tls_dir("serve") / contract.TLS_CA))
    context.check_hostname = False  # the certificate names the party ("serve"); the CA is checked
    with urllib.request.urlopen(f"{serving.url}/metrics", timeout=10, context=context) as response:
        text = response.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = sample.name + (f"{{le={sample.labels['le']}}}" if "le" in sample.labels else "")
            samples[key] = sample.value
    return samples


def concurrency_table(result) -> str:
    return "\n".join([
        f"{result['clients']} concurrent clients, batch-1 requests, {result['answered']} answered "
        f"(serve --batch-wait-ms {result['batch_wait_ms'] if result['batch_wait_ms'] is not None else 'default'}):",
        f"  throughput               {result['throughput_per_s']:.1f} predictions/s",
        f"  latency p50 / p95        {result['p50_ms']:.1f} / {result['p95_ms']:.1f} ms",
        f"  queueing delay mean/p95  {result['mean_queueing_ms']:.1f} / <= {result['p95_queueing_ms_at_most']:.1f} ms (arrival to batch start)",
        f"  MPC steps                {result['mpc_steps']}, mean {result['mean_batch_requests']:.2f} requests "
        f"({result['mean_batch_rows']:.2f} rows) and {result['mean_mpc_step_ms']:.1f} ms each",
        "  CPU per prediction       " + ", ".join(f"{name} {ms:.1f}" for name, ms in result["cpu_ms_per_prediction"].items())
        + f" ms (total {sum(result['cpu_ms_per_prediction'].values()):.1f} ms on {os.cpu_count()} cores)",
        f"  vs plaintext Keras       max |logit difference| {result['max_abs_logit_difference']:.3f}, "
        f"argmax agreement {100 * result['argmax_agreement']:.1f}%",
    ])
