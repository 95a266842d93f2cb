"""Keras models nobody here wrote, served on real players and compared with plaintext Keras."""
import json
import re

import numpy as np
import pytest
import tensorflow as tf

from integration.support import run_cli
from layer_models import REFUSED
from privatemodel.bench import accuracy, architectures
from privatemodel.runtime import reference
from privatemodel.runtime.owner import layers as table
from privatemodel.runtime.owner.convert import convert


@pytest.fixture(scope="module")
def digits():
    return reference.load_digits()[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("architectures")


def clear_digits(model, digits, count=100):
    """Held-out digits on which the model's top two logits differ by more than 0.1: SecureNN's error
    is below ~0.06, so argmax agreement then tests the protocol, not near ties (the bench counts
    those too, over the whole split)."""
    converted = convert(model)
    logits_model = tf.keras.Sequential.from_config(converted.config)
    logits_model.set_weights(converted.weights)
    top = np.sort(logits_model.predict(digits, verbose=0), axis=1)
    return digits[top[:, -1] - top[:, -2] > 0.1][:count]


@pytest.mark.parametrize("name", sorted(architectures.ARCHITECTURES))
def test_architecture_matches_keras_on_100_digits(scratch_cluster, digits, model_dir, tmp_path, name):
    path = architectures.trained_path(name, model_dir)
    model = tf.keras.models.load_model(path, compile=False)
    x = clear_digits(model, digits)
    outputs, activation = accuracy.private_outputs(scratch_cluster, path, x)
    result = accuracy.compare(outputs, activation, model, x)
    assert result["inputs"] == 100
    assert result["max_abs_logit_diff"] <= 0.1, result
    assert result["argmax_agreement"] == 1.0, result
    expected_activation = {"bn_maxpool_softmax": "softmax", "functional_depthwise_gap": "softmax", "mlp_sigmoid": "sigmoid"}
    assert activation == expected_activation.get(name)


def test_the_architectures_exercise_every_accepted_layer():
    """Together with the reference CNN, every layer the table accepts is served on real players here."""
    used = {"InputLayer"}  # the functional architecture has one
    for build in list(architectures.ARCHITECTURES.values()) + [reference.build_model]:
        used |= {type(layer).__name__ for layer in build().layers}
    accepted = {kind for kind, rule in table.LAYERS.items() if rule.treatment != table.REFUSED}
    assert accepted <= used, accepted - used


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_model_leaves_the_players_untouched(scratch_cluster, tmp_path, name):
    make, message = REFUSED[name]
    make().save(tmp_path / "model.h5", save_format="h5")
    before = {p: sorted(f.name for f in scratch_cluster.state_dir(p).iterdir()) for p in ("server0", "server1", "server2")}
    result = run_cli("share", "--model", str(tmp_path / "model.h5"), "--config", str(scratch_cluster.hostmap_path))
    assert result.returncode == 2, result.stderr
    assert any(re.search(message, line) for line in result.stderr.splitlines()), result.stderr
    assert {p: sorted(f.name for f in scratch_cluster.state_dir(p).iterdir()) for p in before} == before


def test_predict_reports_probabilities_when_the_client_applies_softmax(scratch_cluster, model_dir, digits, tmp_path):
    path = architectures.trained_path("bn_maxpool_softmax", model_dir)
    assert run_cli("share", "--model", str(path), "--config", str(scratch_cluster.hostmap_path)).returncode == 0
    from privatemodel.runtime.local.cluster import LocalServing

    serving = LocalServing(scratch_cluster)
    serving.start()
    try:
        np.save(tmp_path / "digit.npy", digits[0])
        args = ("predict", "--access", str(scratch_cluster.access_path), "--input", str(tmp_path / "digit.npy"))
        text = run_cli(*args)
        answer = json.loads(run_cli(*args, "--json").stdout)
    finally:
        serving.stop()
    assert text.returncode == 0, text.stderr
    assert "probabilities (softmax applied in the client to the reconstructed logits)" in text.stdout
    assert answer["output_activation"] == "softmax"
    assert abs(sum(answer["probabilities"][0]) - 1) < 1e-6
