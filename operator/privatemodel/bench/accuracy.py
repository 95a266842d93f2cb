"""Accuracy at scale: private outputs against plaintext Keras over the whole held-out digits split.

For the reference CNN and each architecture in bench/architectures.py: share it onto real local
players, serve it, send every held-out digit through a private client, and compare with Keras: argmax agreement and max |difference|, on the logits (the client
applies a final softmax/sigmoid in plaintext, so the logits are what SecureNN computed).
"""
import logging
import subprocess
import tempfile

import numpy as np

from privatemodel.bench import architectures
from privatemodel.runtime import reference
from privatemodel.runtime.client.postprocess import apply_output_activation
from privatemodel.runtime.client.client import PrivateClient
from privatemodel.runtime.local.cluster import LocalCluster, LocalServing

log = logging.getLogger(__name__)


def private_outputs(cluster, model_path, x, batch: int = 25) -> tuple[np.ndarray, str | None]:
    """Share the model, serve it, predict x in requests of `batch`: (outputs, output_activation).

    Small requests: SecureNN's comparisons take several KB per value on each player, so a batch
    of 100 through a CNN with 16 channels took ~8 GB on each share holder (measured).
    """
    _run(cluster.share_command(model_path))
    serving = LocalServing(cluster)
    serving.start(extra_args=["--max-batch", str(min(batch, len(x))), "--warm-up", str(min(batch, len(x)))])
    try:
        client = PrivateClient(cluster.access_path, timeout=600)
        outputs = np.concatenate([client.predict(x[start : start + batch]) for start in range(0, len(x), batch)])
    finally:
        serving.stop()
    return outputs, client.output_activation


def logits_of(probabilities, activation):
    """Undo the client's softmax/sigmoid, to compare what SecureNN computed (softmax up to a shift)."""
    if activation is None:
        return probabilities
    probabilities = np.clip(probabilities, 1e-300, 1.0)
    if activation == "softmax":
        logits = np.log(probabilities)
        return logits - logits.mean(axis=-1, keepdims=True)
    return np.log(probabilities) - np.log1p(-np.minimum(probabilities, 1 - 1e-16))


def compare(private, activation, keras_model, x) -> dict:
    """Argmax agreement and max |logit difference| of private outputs against Keras on x."""
    import tensorflow as tf

    from privatemodel.runtime.owner.convert import convert

    converted = convert(keras_model)
    plain = tf.keras.Sequential.from_config(converted.config)
    plain.set_weights(converted.weights)
    plain_logits = plain.predict(x, verbose=0).astype(np.float64)
    keras_outputs = keras_model.predict(x, verbose=0)
    # The converted model is Keras' own up to float rounding (the owner step checks it too).
    if not np.allclose(apply_output_activation(plain_logits, activation), keras_outputs, atol=1e-4):
        raise RuntimeError(f"{keras_model.name}: the converted model differs from Keras in plaintext")
    private_logits = logits_of(private, activation)
    if activation == "softmax":
        plain_logits = plain_logits - plain_logits.mean(axis=-1, keepdims=True)
    agreement = float((private.argmax(axis=1) == keras_outputs.argmax(axis=1)).mean())
    return {
        "inputs": len(x),
        "argmax_agreement": agreement,
        "max_abs_logit_diff": float(np.abs(private_logits - plain_logits).max()),
        "max_abs_output_diff": float(np.abs(private - keras_outputs).max()),
        "output_activation": activation,
    }


def measure_accuracy() -> dict:
    """{model name: comparison} over the whole held-out split, on fresh local players."""
    import tensorflow as tf

    x_test = reference.load_digits()[2]
    paths = {"reference_cnn": reference.trained_model_path()}
    paths.update({name: architectures.trained_path(name) for name in architectures.ARCHITECTURES})
    results = {}
    with tempfile.TemporaryDirectory(prefix="privatemodel-accuracy-") as scratch:
        cluster = LocalCluster(scratch)
        try:
            cluster.up()
            for name, path in paths.items():
                outputs, activation = private_outputs(cluster, path, x_test)
                keras_model = tf.keras.models.load_model(path, compile=False)
                results[name] = compare(outputs, activation, keras_model, x_test)
                log.info("accuracy %s: %s", name, results[name])
        finally:
            cluster.down()
    print(accuracy_table(results))
    return results


def accuracy_table(results: dict) -> str:
    lines = [f"{'model (held-out digits)':28} {'inputs':>6} {'argmax agree':>12} {'max |logit diff|':>16}  client applies"]
    for name, r in results.items():
        lines.append(f"{name:28} {r['inputs']:>6} {100 * r['argmax_agreement']:>11.2f}% {r['max_abs_logit_diff']:>16.4f}  {r['output_activation'] or '-'}")
    return "\n".join(lines)


def _run(command) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:4])} failed (exit {result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout

