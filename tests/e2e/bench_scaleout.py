"""`make bench-cluster`: scale-out throughput on the test cluster. A PrivateModel of the reference
CNN with spec.serving.replicas 2; 1, 4 and 8 concurrent clients (threads of one client pod, batch
1, 100 predictions a run) against one triple and against both. Prints predictions/s per (clients,
triples) and writes them to build/bench-cluster.json. Nothing about speed is asserted.

A benchmark, not a test: pytest collects only test_*.py, so `make test` and `-m e2e` leave this
file out; it runs when named, on the e2e layer's fixtures (cluster, images, chart, a namespace)."""
import json
import time
import uuid

import pytest

from e2e.support import (
    REPO,
    apply_manifest,
    create_model_secret,
    example_manifest,
    npy_config_map,
    run_pod,
    wait_until,
    wait_until_serving,
)
from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.naming import child_name, selector_labels

MODEL = "bench"
OUTPUT = REPO / "build" / "bench-cluster.json"
CLIENTS = (1, 4, 8)
TRIPLES = (1, 2)
PREDICTIONS = 100

# Run in a client pod: some clients (threads), each its own PrivateClient, some batch-1 predictions
# each, against the triples the access file lists (all, or only the first). Prints predictions/s.
THROUGHPUT = r'''
import json, sys, threading, time
import numpy as np
from privatemodel.runtime.client.client import PrivateClient
access = json.load(open(sys.argv[1]))
triples = int(sys.argv[2])
access["triples"] = access["triples"][:triples]
threads, requests = int(sys.argv[3]), int(sys.argv[4])
x = np.load("/data/0.npy")
clients = [PrivateClient(access) for _ in range(threads)]
for client in clients:
    client.predict(x)  # connections and every triple's metadata, before the clock starts
def run(client):
    for _ in range(requests):
        client.predict(x)
started = time.monotonic()
workers = [threading.Thread(target=run, args=(client,)) for client in clients]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
seconds = time.monotonic() - started
print(json.dumps({"triples": triples, "predictions": threads * requests, "seconds": seconds,
                  "per_second": threads * requests / seconds}))
'''


@pytest.fixture(scope="module")
def scaled(kubeconfig, namespace, custom, reference_model):
    """The model on two triples, Serving; returns the seconds from apply to Serving."""
    create_model_secret(kubeconfig, namespace, f"{MODEL}-model", reference_model["path"])
    manifest = example_manifest(MODEL)
    manifest["spec"]["model"]["secretKeyRef"]["name"] = f"{MODEL}-model"
    manifest["spec"]["serving"] = {"replicas": 2}
    apply_manifest(kubeconfig, namespace, manifest)
    _, seconds = wait_until_serving(custom, namespace, MODEL, timeout=900)
    return seconds


def wait_until_warm(core, namespace):
    """Each triple's serving has compiled the batch sizes it compiles once ready (steady state, not
    the first burst's compiles, is what sizing a cluster needs)."""
    last = f"warmed up batch size {max(contract.IDLE_WARM_UP_SIZES)} "
    selector = ",".join(f"{key}={value}" for key, value in selector_labels(MODEL, Component.SERVING).items())

    def warm():
        pods = core.list_namespaced_pod(namespace, label_selector=selector).items
        return len(pods) == len(TRIPLES) and all(
            last in core.read_namespaced_pod_log(pod.metadata.name, namespace) for pod in pods)

    wait_until(warm, 300, "each triple's serving compiled its idle warm-up sizes")


def table(runs):
    rows = {}
    for run in runs:
        rows.setdefault(run["clients"], {})[run["triples"]] = run["per_second"]
    lines = ["predictions/s (batch 1, reference CNN)", "clients  " + "  ".join(f"{t} triple(s)" for t in TRIPLES)]
    for clients, by_triples in rows.items():
        lines.append(f"{clients:>7}  " + "  ".join(f"{by_triples[t]:>11.1f}" for t in TRIPLES))
    return "\n".join(lines)


def test_throughput_with_one_triple_and_with_two(scaled, namespace, core, reference_model, capsys):
    name = f"clients-{uuid.uuid4().hex[:6]}"
    npy_config_map(core, namespace, name, reference_model["x"][:1])
    access = ("access", consts.ACCESS_DIR, {"configMap": {"name": child_name(MODEL, Component.ACCESS)}})
    wait_until_warm(core, namespace)
    runs = []
    for clients in CLIENTS:
        for triples in TRIPLES:
            phase, log = run_pod(core, namespace, f"{name}-{clients}-{triples}", [
                "python3", "-c", THROUGHPUT, f"{consts.ACCESS_DIR}/{contract.ACCESS_FILE}", str(triples), str(clients),
                str(PREDICTIONS // clients)],
                volumes=[access, ("inputs", "/data", {"configMap": {"name": name}})], timeout=600,
                # Clients elsewhere have their own CPU; here they share the players' two cores and,
                # BestEffort, would be starved by them (flat throughput whatever the clients).
                cpu_request="250m")
            assert phase == "Succeeded", log
            (result,) = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
            assert result["predictions"] == clients * (PREDICTIONS // clients), result
            runs.append({"clients": clients, **result})
            with capsys.disabled():
                print(f"\n{clients} client(s), {triples} triple(s): {result['per_second']:.1f} predictions/s "
                      f"({result['predictions']} in {result['seconds']:.1f} s)", flush=True)
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "setup": f"test cluster, reference CNN, batch 1, clients as threads of one client pod (250m CPU), "
                 f"{PREDICTIONS} predictions a run (rounded down to a multiple of the clients)",
        "apply_to_serving_2_triples_s": round(scaled, 1),
        "runs": runs,
    }
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    OUTPUT.write_text(json.dumps(results, indent=2) + "\n")
    with capsys.disabled():
        print(f"\n\n{table(runs)}\n\nwritten to {OUTPUT.relative_to(REPO)}", flush=True)
