"""Hostile and broken model files given to `privatemodel share`: each is refused with one line naming
what and where, no code in the file runs, and the players keep the shares they had."""
import os
import shutil

import h5py
import numpy as np
import pytest

from faults.outcomes import CLEAR, cli_error
from integration.support import manifest_of, run_cli, run_python


def share(cluster, model, *extra):
    return run_cli("share", "--model", str(model), "--config", str(cluster.hostmap_path), *extra)


def make_keras_file(path, layers):
    import tensorflow as tf

    model = tf.keras.Sequential(layers)
    model.save(path, save_format="h5")
    return path


def unsupported_layer_model(path):
    import tensorflow as tf

    return make_keras_file(path, [
        tf.keras.layers.Conv2D(2, 3, batch_input_shape=(None, 28, 28, 1)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.LeakyReLU(name="leaky"),
        tf.keras.layers.Dense(10),
    ])


def dense_model_with(path, kernel_value, name):
    """One Dense layer whose kernel holds `kernel_value` once among ordinary weights."""
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.layers.Dense(10, name=name, input_shape=(4,))])
    kernel = np.full((4, 10), 0.5)
    kernel[2, 3] = kernel_value
    model.set_weights([kernel, np.zeros(10)])
    model.save(path, save_format="h5")
    return path


def unsupported_option_model(path):
    import tensorflow as tf

    return make_keras_file(path, [
        tf.keras.layers.Conv2D(2, 3, dilation_rate=2, name="dilated", batch_input_shape=(None, 28, 28, 1)),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(10),
    ])


def lambda_model(path):
    """A Lambda whose code leaves a marker: Keras would run it while loading the model."""
    import tensorflow as tf

    marker = str(path.parent / "lambda-ran")  # the Lambda's closure is saved with it: a plain string
    layers = [tf.keras.layers.Dense(2, input_shape=(3,)), tf.keras.layers.Lambda(lambda x: (open(marker, "w").close(), x)[1], name="evil")]
    model = tf.keras.Sequential(layers)
    os.unlink(marker)  # building the model here ran it once
    return model


def lambda_h5(path):
    lambda_model(path).save(path, save_format="h5")
    return path


def lambda_architecture(path):
    """Weights-only .h5 and an architecture JSON whose Lambda carries the marshalled code."""
    model = lambda_model(path)
    model.save_weights(path)
    (path.parent / "architecture.json").write_text(model.to_json())
    return path


def truncated(path, reference_path):
    data = reference_path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def header_overwritten(path, reference_path):
    """The HDF5 signature kept, the superblock after it overwritten."""
    data = bytearray(reference_path.read_bytes())
    data[8:512] = bytes(504)
    path.write_bytes(bytes(data))
    return path


def config_not_json(path, reference_path):
    shutil.copy(reference_path, path)
    with h5py.File(path, "r+") as h5:
        h5.attrs["model_config"] = '{"class_name": "Sequential", "config": {"layers": [{'
    return path


def oversized(path):
    """A (sparse) file one byte over the size a model file may have."""
    from privatemodel.runtime.owner.model import MAX_MODEL_BYTES

    with open(path, "wb") as file:
        file.truncate(MAX_MODEL_BYTES + 1)
    return path


def hdf5_without_model(path):
    with h5py.File(path, "w") as h5:
        h5["table"] = np.arange(10)
    return path


NOT_ENCODABLE = r"\(after conversion\): NaN and infinity have no fixed-point encoding"
BEYOND_RANGE = r"\(after conversion\) exceed the fixed-point range ±2187"
BAD_MODELS = [
    ("truncated .h5 (first third)", lambda p, ref: truncated(p / "truncated.h5", ref),
     r"truncated\.h5: not a readable HDF5 file"),
    ("corrupt .h5 (superblock overwritten)", lambda p, ref: header_overwritten(p / "corrupt.h5", ref),
     r"corrupt\.h5: not a readable HDF5 file"),
    ("text file named .h5", lambda p, ref: (p / "notes.h5").write_text("hello") and p / "notes.h5",
     r"notes\.h5: not a readable HDF5 file"),
    ("HDF5 file that is no model", lambda p, ref: hdf5_without_model(p / "table.h5"),
     r"table\.h5: an HDF5 file but not a Keras model"),
    (".h5 whose model config is not JSON", lambda p, ref: config_not_json(p / "config.h5", ref),
     r"config\.h5: the model's architecture is not a Keras model config"),
    ("no such file", lambda p, ref: p / "missing.h5", r"missing\.h5: no such file"),
    ("a file over the size cap", lambda p, ref: oversized(p / "oversized.h5"),
     r"oversized\.h5: 268435457 bytes, over the 268435456 \(256 MiB\) a model file may have; refused before reading it"),
    ("LeakyReLU layer", lambda p, ref: unsupported_layer_model(p / "leaky.h5"),
     r"layer 3 'leaky' \(LeakyReLU\): not supported: .*use ReLU; supported layers: "),
    ("Conv2D with dilation_rate", lambda p, ref: unsupported_option_model(p / "dilated.h5"),
     r"layer 1 'dilated' \(Conv2D\): unsupported option: .*dilation_rate"),
    ("weight of 5000 (beyond fixed point)", lambda p, ref: dense_model_with(p / "big.h5", 5000.0, "big"),
     r"'big' \(Dense\) kernel: weights up to 5000 " + BEYOND_RANGE),
    ("weight of 1e16", lambda p, ref: dense_model_with(p / "huge.h5", 1e16, "huge"),
     r"'huge' \(Dense\) kernel: weights up to 1e\+16 " + BEYOND_RANGE),
    ("a NaN weight", lambda p, ref: dense_model_with(p / "nan.h5", np.nan, "nan_layer"),
     r"'nan_layer' \(Dense\) kernel: weights up to nan " + NOT_ENCODABLE),
    ("an infinite weight", lambda p, ref: dense_model_with(p / "inf.h5", -np.inf, "inf_layer"),
     r"'inf_layer' \(Dense\) kernel: weights up to inf " + NOT_ENCODABLE),
    ("legacy .h5 with a Lambda layer", lambda p, ref: lambda_h5(p / "lambda.h5"),
     r"lambda\.h5: layer 2 'evil' \(Lambda\): not supported: .*refused before loading the model, so none of its code ran"),
]


@pytest.mark.parametrize("tried, make, message", BAD_MODELS, ids=[tried for tried, _, _ in BAD_MODELS])
def test_bad_models_are_refused_and_players_keep_their_shares(cluster, shared, reference_model, tmp_path, faults, tried, make, message):
    before = {p: manifest_of(cluster, p) for p in ("server0", "server1")}
    model = make(tmp_path, reference_model["path"])
    outcome = faults.attempt(f"share --model: {tried}", lambda: cli_error(share(cluster, model)), r"exit 2: error: .*" + message, deadline=180)
    assert outcome.kind == CLEAR, outcome
    assert {p: manifest_of(cluster, p) for p in ("server0", "server1")} == before
    assert not (tmp_path / "lambda-ran").exists()


def test_an_architecture_json_with_a_lambda_is_refused_before_its_code_runs(cluster, shared, tmp_path, faults):
    weights = lambda_architecture(tmp_path / "weights.h5")
    architecture = tmp_path / "architecture.json"
    before = manifest_of(cluster)
    outcome = faults.attempt("share --architecture: JSON with a Lambda layer",
                             lambda: cli_error(share(cluster, weights, "--architecture", str(architecture))),
                             r"exit 2: error: .*architecture\.json: layer 2 'evil' \(Lambda\): not supported: .*none of its code ran", deadline=180)
    assert outcome.kind == CLEAR, outcome
    assert not (tmp_path / "lambda-ran").exists()
    assert manifest_of(cluster) == before
    # The marker works: Keras itself, given the same files, runs the Lambda's code.
    loaded = run_python(f"import tensorflow as tf; tf.keras.models.model_from_json(open({str(architecture)!r}).read())")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert (tmp_path / "lambda-ran").exists()


def test_keras_itself_runs_the_lambda_in_the_h5_refused_above(tmp_path):
    """The control for the marker: loading the same .h5 with Keras leaves it."""
    model = lambda_h5(tmp_path / "lambda.h5")
    loaded = run_python(f"import tensorflow as tf; tf.keras.models.load_model({str(model)!r}, compile=False)")
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert (tmp_path / "lambda-ran").exists()
