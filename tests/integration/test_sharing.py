"""The model owner's step: what is accepted, what is refused, and that a refusal changes nothing."""
import json
import os

import h5py
import numpy as np
import pytest

from integration.support import manifest_of, run_cli


def share(cluster, model, *extra):
    return run_cli("share", "--model", str(model), "--config", str(cluster.hostmap_path), *extra)


def test_each_player_holds_only_its_own_share(cluster, shared):
    share_id = shared["share_id"]
    files = {p: cluster.state_dir(p) / f"weights-{share_id}-{p}.share" for p in ("server0", "server1", "server2")}
    assert files["server0"].stat().st_size > 0 and files["server1"].stat().st_size > 0
    assert not files["server2"].exists()
    assert files["server0"].read_bytes() != files["server1"].read_bytes()
    assert [manifest_of(cluster, p)["share_id"] for p in ("server0", "server1", "server2")] == [share_id] * 3
    assert manifest_of(cluster)["model"]["input_shape"] == [28, 28, 1]


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


def huge_weight_model(path):
    import tensorflow as tf

    model = tf.keras.Sequential([tf.keras.layers.Dense(10, name="huge", input_shape=(4,))])
    model.set_weights([np.full((4, 10), 5000.0), np.zeros(10)])
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

    marker = str(path.parent / "lambda-ran")
    layers = [tf.keras.layers.Dense(2, input_shape=(3,)), tf.keras.layers.Lambda(lambda x: (open(marker, "w").close(), x)[1], name="evil")]
    make_keras_file(path, layers)
    os.unlink(marker)  # building the model here ran it once
    return path


def corrupt_file(path, reference_path):
    data = reference_path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def hdf5_without_model(path):
    with h5py.File(path, "w") as h5:
        h5["table"] = np.arange(10)
    return path


@pytest.mark.parametrize("make, message", [
    (lambda p, ref: corrupt_file(p / "truncated.h5", ref), "not a readable HDF5 file"),
    (lambda p, ref: (p / "notes.h5").write_text("hello") and p / "notes.h5", "not a readable HDF5 file"),
    (lambda p, ref: hdf5_without_model(p / "table.h5"), "an HDF5 file but not a Keras model"),
    (lambda p, ref: unsupported_layer_model(p / "leaky.h5"), r"layer 3 'leaky' \(LeakyReLU\): not supported: .*use ReLU; supported layers: "),
    (lambda p, ref: huge_weight_model(p / "huge.h5"), r"'huge' \(Dense\) kernel: weights up to 5000 \(after conversion\) exceed the fixed-point range ±2187"),
    (lambda p, ref: unsupported_option_model(p / "dilated.h5"), r"layer 1 'dilated' \(Conv2D\): unsupported option: .*dilation_rate"),
    (lambda p, ref: p / "missing.h5", "missing.h5: no such file"),
    (lambda p, ref: lambda_model(p / "lambda.h5"), r"layer 2 'evil' \(Lambda\): not supported: .*refused before loading the model, so none of its code ran"),
])
def test_bad_models_are_refused_and_players_keep_their_shares(cluster, shared, reference_model, tmp_path, make, message):
    before = {p: manifest_of(cluster, p) for p in ("server0", "server1")}
    result = share(cluster, make(tmp_path, reference_model["path"]))
    assert result.returncode == 2, result.stderr
    assert "error: " in result.stderr
    assert any(__import__("re").search(message, line) for line in result.stderr.splitlines()), result.stderr
    assert {p: manifest_of(cluster, p) for p in ("server0", "server1")} == before
    assert not (tmp_path / "lambda-ran").exists()


def test_input_shape_mismatch_names_both_shapes(cluster, shared, reference_model, tmp_path):
    result = share(cluster, reference_model["path"], "--input-shape", "1,32,32,1", "--error-file", str(tmp_path / "reason"))
    assert result.returncode == 2
    expected = "input shape mismatch: expected (1, 32, 32, 1), the model has (None, 28, 28, 1)"
    assert expected in result.stderr
    assert (tmp_path / "reason").read_text().strip() == expected
    assert manifest_of(cluster)["share_id"] == shared["share_id"]


def test_weights_only_h5_needs_and_accepts_an_architecture(cluster, shared, reference_model, tmp_path):
    import tensorflow as tf

    model = tf.keras.models.load_model(reference_model["path"], compile=False)
    model.save_weights(tmp_path / "weights.h5")
    (tmp_path / "architecture.json").write_text(model.to_json())

    refused = share(cluster, tmp_path / "weights.h5")
    assert refused.returncode == 2
    assert "holds weights only, no architecture; pass the architecture JSON too" in refused.stderr

    accepted = share(cluster, tmp_path / "weights.h5", "--architecture", str(tmp_path / "architecture.json"))
    assert accepted.returncode == 0, accepted.stderr
    manifest = manifest_of(cluster)
    assert manifest["share_id"] != shared["share_id"]
    assert manifest["model"]["weight_shapes"] == json.loads(json.dumps(shared["model"]["weight_shapes"]))
    # The previous share is emptied, not left behind.
    assert (cluster.state_dir("server0") / f"weights-{shared['share_id']}-server0.share").read_bytes() == b""
    shared.update(manifest)
