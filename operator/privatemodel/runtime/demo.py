"""The main job on an embedded default: the reference CNN served privately by three local players."""
import logging
import subprocess
import tempfile
import time

import numpy as np

from privatemodel.runtime import reference
from privatemodel.runtime.local.cluster import LocalCluster, LocalServing

log = logging.getLogger(__name__)

NUM_QUERIES = 3


def run_demo(directory=None) -> int:
    import tensorflow as tf

    started = time.monotonic()
    model_path = reference.trained_model_path()
    _, _, x_test, y_test = reference.load_digits()
    queries, labels = x_test[:NUM_QUERIES], y_test[:NUM_QUERIES]
    plaintext = tf.keras.models.load_model(model_path, compile=False).predict(queries, verbose=0)

    with tempfile.TemporaryDirectory(prefix="privatemodel-demo-") as scratch:
        cluster = LocalCluster(directory or scratch)
        serving = LocalServing(cluster)
        try:
            cluster.up()
            log.info("sharing %s (the model owner's step, in its own process)", model_path)
            subprocess.run(cluster.share_command(model_path), check=True)
            serving.start(num_requests=NUM_QUERIES)
            private = _query_privately(cluster, queries)
            exit_code = serving.wait(timeout=30)
            if exit_code != 0:
                raise RuntimeError(f"serve did not exit 0 after {NUM_QUERIES} requests (exit code {exit_code})")
        finally:
            serving.stop()
            cluster.down()

    _print_comparison(labels, plaintext, private)
    agree = int((private.argmax(1) == plaintext.argmax(1)).sum())
    print(f"\n{agree}/{NUM_QUERIES} private classes match plaintext Keras; max |logit difference| "
          f"{np.abs(private - plaintext).max():.4f}; demo took {time.monotonic() - started:.0f} s")
    return 0 if agree == NUM_QUERIES else 1


def _query_privately(cluster, queries):
    from privatemodel.runtime.client.client import PrivateClient

    client = PrivateClient(cluster.access_path)
    return np.concatenate([client.predict(query) for query in queries])


def _print_comparison(labels, plaintext, private):
    print(f"\n{'digit':>5} {'label':>5} {'private':>7} {'plain':>5}  logits (private / plaintext)")
    for index, (label, plain_row, private_row) in enumerate(zip(labels, plaintext, private)):
        print(f"{index:>5} {label:>5} {private_row.argmax():>7} {plain_row.argmax():>5}  "
              f"[{' '.join(f'{v:+6.2f}' for v in private_row)}]")
        print(f"{'':>27}[{' '.join(f'{v:+6.2f}' for v in plain_row)}]")
