"""Each fix in tfe_fixes: tf-encrypted's original is broken, the fixed one matches plaintext TensorFlow.

Everything runs in this process: tfe.LocalConfig places server0/1/2 on the local CPU.
"""
import json

import numpy as np
import pytest
import tensorflow as tf

from privatemodel.runtime.mpc import tfe_fixes
from privatemodel.runtime.mpc.tfe import tfe
from tf_encrypted.keras.layers import convolutional
from tf_encrypted.keras.layers import layers_utils
from tf_encrypted.protocol.pond import pond


def fixed_point_tolerance(protocol, pool_area: int) -> float:
    """Error bound for a private average of pool_area values in [-1, 1].

    Half a unit in the last place from encoding the inputs, half a unit times the window
    sum (at most pool_area) from encoding the reciprocal, one unit from truncation (which
    is off by more only with negligible probability).
    """
    unit = 1 / protocol.fixedpoint_config.scaling_factor
    return (0.5 + 0.5 * pool_area + 1) * unit


def private_avgpool(protocol, x_nhwc, pool_size, strides, padding):
    """SecureNN average pooling of a secret-shared NHWC array, revealed; tf-encrypted pools NCHW."""
    x = tfe.define_private_variable(x_nhwc.transpose(0, 3, 1, 2))
    y = protocol.avgpool2d(x, pool_size, strides, padding)
    return y.reveal().to_native().numpy().transpose(0, 2, 3, 1)


def plaintext_avgpool(x_nhwc, pool_size, strides, padding):
    return tf.nn.avg_pool2d(x_nhwc, pool_size, strides, padding).numpy()


def random_images(shape):
    return np.random.default_rng(0).uniform(-1, 1, size=shape)


def test_original_reshape_reduce_needs_tf1_dimension(protocol):
    original = tfe_fixes.ORIGINALS[(pond, "_avgpool2d_reshape_reduce")]
    shares = protocol.tensor_factory.tensor(np.zeros([1, 2, 26, 26], dtype=np.int64))
    with pytest.raises(AttributeError, match="Dimension"):
        original(shares, (2, 2), (2, 2), "VALID")


def test_evenly_tiling_avgpool_matches_plaintext(protocol, monkeypatch):
    reshape_calls = []
    fixed = pond._avgpool2d_reshape_reduce
    monkeypatch.setattr(pond, "_avgpool2d_reshape_reduce", lambda *args: reshape_calls.append(args) or fixed(*args))
    x = random_images([2, 26, 26, 3])

    got = private_avgpool(protocol, x, (2, 2), (2, 2), "VALID")

    assert len(reshape_calls) == 2  # once per share holder: the path the fix repairs
    expected = plaintext_avgpool(x, (2, 2), (2, 2), "VALID")
    np.testing.assert_allclose(got, expected, rtol=0, atol=fixed_point_tolerance(protocol, 4))


@pytest.mark.parametrize(
    "shape, pool_size, strides",
    [([2, 7, 7, 2], (2, 2), (2, 2)), ([1, 5, 6, 1], (3, 3), (2, 2)), ([1, 4, 4, 1], (2, 2), (1, 1))],
)
def test_same_padding_avgpool_matches_plaintext_only_with_the_fix(protocol, monkeypatch, shape, pool_size, strides):
    x = random_images(shape)
    expected = plaintext_avgpool(x, pool_size, strides, "SAME")
    tolerance = fixed_point_tolerance(protocol, pool_size[0] * pool_size[1])

    got = private_avgpool(protocol, x, pool_size, strides, "SAME")
    np.testing.assert_allclose(got, expected, rtol=0, atol=tolerance)

    monkeypatch.setattr(pond, "_avgpool2d_core", tfe_fixes.ORIGINALS[(pond, "_avgpool2d_core")])
    unfixed = private_avgpool(protocol, x, pool_size, strides, "SAME")
    assert np.abs(unfixed - expected).max() > 10 * tolerance


def test_valid_padding_avgpool_that_does_not_tile_matches_plaintext(protocol):
    x = random_images([1, 11, 11, 2])
    got = private_avgpool(protocol, x, (2, 2), (2, 2), "VALID")
    expected = plaintext_avgpool(x, (2, 2), (2, 2), "VALID")
    np.testing.assert_allclose(got, expected, rtol=0, atol=fixed_point_tolerance(protocol, 4))


def small_cnn(batch_size):
    layers = tf.keras.layers
    tf.random.set_seed(0)
    return tf.keras.Sequential(
        [
            layers.Conv2D(3, (3, 3), batch_input_shape=(batch_size, 10, 10, 1)),
            layers.AveragePooling2D((2, 2)),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.Dense(4),
        ]
    )


def test_layer_configs_read_back_from_json_are_accepted(protocol, monkeypatch):
    config = json.loads(json.dumps(small_cnn(1).get_config()))  # tuples come back as lists

    tfe.keras.models.model_from_config(config)

    monkeypatch.setattr(convolutional, "default_args_check", tfe_fixes.ORIGINALS[(layers_utils, "default_args_check")])
    with pytest.raises(layers_utils.LayerArgNotImplementedError, match="dilation_rate"):
        tfe.keras.models.model_from_config(config)


def test_unsupported_layer_arguments_are_still_refused():
    with pytest.raises(layers_utils.LayerArgNotImplementedError, match="dilation_rate"):
        tfe.keras.layers.Conv2D(2, (3, 3), dilation_rate=[2, 2])


def test_fixes_can_be_applied_again():
    fixed = pond._avgpool2d_reshape_reduce, pond._avgpool2d_core, convolutional.default_args_check
    originals = dict(tfe_fixes.ORIGINALS)
    tfe_fixes.apply_all()
    assert (pond._avgpool2d_reshape_reduce, pond._avgpool2d_core, convolutional.default_args_check) == fixed
    assert tfe_fixes.ORIGINALS == originals


@pytest.mark.engine  # SecureNN in this process: seconds each
def test_small_cnn_private_inference_matches_plaintext(protocol):
    model = small_cnn(batch_size=2)
    x = random_images([2, 10, 10, 1]).astype(np.float32)
    expected = model.predict(x, verbose=0)

    # clone_model rebuilds the model under SecureNN and set_weights secret-shares the weights.
    private_model = tfe.keras.models.clone_model(model)

    @tf.function
    def predict(images):
        private_images = tfe.define_private_input("server0", lambda: images)
        return private_model(private_images).reveal().to_native()

    np.testing.assert_allclose(predict(tf.constant(x)).numpy(), expected, rtol=0, atol=0.1)


@pytest.mark.parametrize("operation", ["conv2d", "matmul"])
def test_masked_products_match_plaintext_with_one_large_product_fewer(protocol, monkeypatch, operation):
    """Both factors secret-shared, as a Conv2D or Dense layer's input and weights are. Products
    over the input's shape: server2's for the triple, then two on each holder (tf-encrypted's
    original ran three on server0)."""
    rng = np.random.default_rng(1)
    if operation == "conv2d":
        x, w = rng.uniform(-1, 1, [2, 3, 9, 9]), rng.uniform(-1, 1, [3, 3, 3, 4])  # NCHW, HWIO
        expected = tf.nn.conv2d(x.transpose(0, 2, 3, 1), w, 1, "VALID").numpy().transpose(0, 3, 1, 2)
        multiply = lambda u, v: protocol.conv2d(u, v, (1, 1), "VALID")  # noqa: E731
    else:
        x, w = rng.uniform(-1, 1, [4, 30]), rng.uniform(-1, 1, [30, 5])
        expected = x @ w
        multiply = protocol.matmul
    factory = type(protocol.tensor_factory.tensor(np.zeros([1], np.int64)))
    original = getattr(factory, operation)
    large = []

    def counted(self, other, *args):
        if tuple(self.shape) == x.shape:
            large.append(operation)
        return original(self, other, *args)

    monkeypatch.setattr(factory, operation, counted)
    got = multiply(tfe.define_private_variable(x), tfe.define_private_variable(w)).reveal().to_native().numpy()

    # Fixed point: every factor is encoded, and the product truncated.
    np.testing.assert_allclose(got, expected, rtol=0, atol=0.01)
    assert len(large) == 5


@pytest.mark.parametrize(
    "images, kernel, strides, padding",
    [
        ([2, 1, 10, 10], [3, 3, 1, 4], (1, 1), "VALID"),
        ([3, 5, 9, 8], [3, 2, 5, 2], (1, 1), "SAME"),  # odd padding: the extra row after, as TensorFlow does
        ([1, 4, 11, 11], [5, 5, 4, 3], (2, 2), "SAME"),
        ([2, 2, 12, 9], [4, 3, 2, 6], (2, 3), "VALID"),
        ([1, 3, 6, 6], [1, 1, 3, 2], (1, 1), "VALID"),
        ([2, 3, 7, 7], [7, 7, 3, 1], (1, 1), "VALID"),  # the whole image is one patch
    ],
)
def test_convolution_of_shares_equals_tf_encrypted_im2col(protocol, images, kernel, strides, padding):
    """Shares are uniform in the whole int64 ring, so every product and sum wraps around: the
    result must be the same ring element as tf-encrypted's own convolution's, bit for bit."""
    from tf_encrypted.tensor import native

    rng = np.random.default_rng(sum(images + kernel))
    ring = np.iinfo(np.int64)
    factory = protocol.tensor_factory
    x = factory.tensor(rng.integers(ring.min, ring.max, images, dtype=np.int64, endpoint=True), encode=False)
    w = factory.tensor(rng.integers(ring.min, ring.max, kernel, dtype=np.int64, endpoint=True), encode=False)

    got = x.conv2d(w, strides, padding).value.numpy()
    expected = tfe_fixes.ORIGINALS[(native, "conv2d")](x, w, strides=strides, padding=padding).value.numpy()

    assert native.conv2d is not tfe_fixes.ORIGINALS[(native, "conv2d")]
    assert got.shape == expected.shape
    np.testing.assert_array_equal(got, expected)
