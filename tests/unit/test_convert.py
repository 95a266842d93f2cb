"""The owner step's conversion, without players: each layer table entry computed under SecureNN in
this process (tfe.LocalConfig), exactly as serving builds it, or refused with its position."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from layer_models import REFUSED, SUPPORTED, clear_inputs, randomize_batch_norms
from privatemodel.runtime.client.postprocess import apply_output_activation
from privatemodel.runtime.mpc.tfe import tfe
from privatemodel.runtime.owner import layers as table
from privatemodel.runtime.owner.convert import ModelError, convert, plain_json
from privatemodel.runtime.owner.model import ModelSummary, summarize
from privatemodel.runtime.serving.server import _with_batch_size

L = tf.keras.layers
README = Path(__file__).parents[2] / "README.md"


def private_predict(summary, weights, x):
    """What serving does: the summary through JSON, a tfe.keras model from it, private weights."""
    summary = ModelSummary.from_dict(json.loads(json.dumps(summary.to_dict())))
    model = tfe.keras.models.model_from_config(_with_batch_size(summary.config, len(x)))
    model.set_weights([tfe.define_private_variable(w).read_value() for w in weights])
    logits = model(tfe.define_private_variable(x)).reveal().to_native().numpy()
    return apply_output_activation(logits.reshape((len(x),) + summary.output_shape), summary.output_activation)


def test_every_accepted_table_entry_has_a_model():
    accepted = {kind for kind, rule in table.LAYERS.items() if rule.treatment != table.REFUSED}
    assert accepted <= {name.split("-")[0] for name in SUPPORTED}


@pytest.mark.engine  # SecureNN in this process: seconds each
@pytest.mark.parametrize("name", sorted(SUPPORTED))
def test_supported_layer_is_exact_enough_under_securenn(protocol, name):
    model = randomize_batch_norms(SUPPORTED[name]())
    summary, weights = summarize(model)
    x = clear_inputs(model)
    expected = model(x, training=False).numpy()
    actual = private_predict(summary, weights, x)
    assert np.abs(actual - expected).max() <= 0.1
    assert (actual.argmax(axis=1) == expected.argmax(axis=1)).all()


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_unsupported_model_is_refused_naming_the_layer(name):
    make, message = REFUSED[name]
    with pytest.raises(ModelError) as refused:
        summarize(make())
    assert re.search(message, str(refused.value)), str(refused.value)


def test_inference_noops_are_dropped_and_a_final_softmax_goes_to_the_client():
    model = SUPPORTED["softmax-activation"]()
    converted = convert(tf.keras.Sequential([L.Dropout(0.2, input_shape=(6,)), L.Dense(4), L.GaussianNoise(1.0), L.Activation("linear"), L.Dense(3, activation="softmax")]))
    assert [layer["class_name"] for layer in converted.config["layers"]] == ["Dense", "Dense"]
    assert converted.config["layers"][-1]["config"]["activation"] == "linear"
    assert converted.config["layers"][0]["config"]["batch_input_shape"] == [None, 6]
    assert converted.output_activation == "softmax"
    assert summarize(model)[0].to_dict()["output_activation"] == "softmax"


def test_batch_norm_folds_into_the_kernel_and_bias_exactly():
    model = randomize_batch_norms(tf.keras.Sequential([L.Dense(3, use_bias=False, input_shape=(2,)), L.BatchNormalization(epsilon=0.01)]))
    kernel = model.layers[0].get_weights()[0]
    gamma, beta, mean, variance = model.layers[1].get_weights()
    converted = convert(model)
    factor = gamma / np.sqrt(variance + 0.01)
    np.testing.assert_allclose(converted.weights[0], kernel * factor, rtol=1e-6)
    np.testing.assert_allclose(converted.weights[1], beta - mean * factor, rtol=1e-5, atol=1e-6)
    assert converted.config["layers"][0]["config"]["use_bias"] is True


def test_functional_chain_becomes_sequential():
    converted = convert(SUPPORTED["InputLayer"]())
    assert [layer["class_name"] for layer in converted.config["layers"]] == ["Conv2D", "Activation", "Flatten", "Dense"]
    assert converted.config["layers"][0]["config"]["batch_input_shape"] == [None, 8, 8, 1]


def test_configs_holding_numpy_values_become_plain_json():
    config = L.ReLU().get_config()
    with pytest.raises(TypeError):
        json.dumps(config)
    assert json.loads(json.dumps(plain_json(config))) == plain_json(config)
    assert plain_json({"a": (np.float32(1.5), np.arange(2))}) == {"a": [1.5, [0, 1]]}


def test_output_activations_in_the_client():
    logits = np.array([[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(apply_output_activation(logits, "softmax"), [[1, 0, 0], [1 / 3] * 3])
    np.testing.assert_allclose(apply_output_activation(np.array([-800.0, 0.0, 800.0]), "sigmoid"), [0, 0.5, 1])
    assert (apply_output_activation(logits, None) == logits).all()
    with pytest.raises(ValueError, match="unknown output activation 'tanh'"):
        apply_output_activation(logits, "tanh")


def test_readme_shows_the_layer_table():
    assert table.table_text() in README.read_text()


def test_weights_beyond_the_fixed_point_range_are_refused_naming_the_layer():
    from privatemodel.runtime.owner.model import check_range

    model = tf.keras.Sequential([L.Dense(2, name="big", input_shape=(3,)), L.Dense(2, use_bias=False, name="nan")])
    summary, weights = summarize(model)
    check_range(summary, weights, 2187.0)
    with pytest.raises(ModelError, match=r"'big' \(Dense\) bias: weights up to 3000 .* exceed the fixed-point range ±2187"):
        check_range(summary, [weights[0], np.full(2, -3000.0), weights[2]], 2187.0)
    with pytest.raises(ModelError, match=r"'nan' \(Dense\) kernel: weights up to nan"):
        check_range(summary, weights[:2] + [np.full((2, 2), np.nan)], 2187.0)


def test_layers_command_prints_the_table(capsys):
    from privatemodel import cli

    with pytest.raises(SystemExit) as exit_code:
        cli.main(["layers"])
    assert exit_code.value.code == 0
    assert capsys.readouterr().out.strip() == table.table_text()
