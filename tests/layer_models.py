"""One small Keras model per entry of the layer table, and models that must be refused.

Used by the unit tests (converted and run under SecureNN in one process) and by the integration
tests (refused on real players before anything is shared).
"""
import numpy as np


def _layers():
    import tensorflow as tf

    return tf.keras.layers


def _seq(*layers):
    import tensorflow as tf

    return tf.keras.Sequential(list(layers))


def _image(*middle, shape=(8, 8, 2)):
    """Conv2D in front (so there is something to fold into or pool), a 3-class Dense behind."""
    L = _layers()
    return _seq(L.Conv2D(4, 3, input_shape=shape), *middle, L.Flatten(), L.Dense(3))


def _functional_chain():
    import tensorflow as tf

    L = _layers()
    inputs = tf.keras.Input((8, 8, 1))
    x = L.Conv2D(3, 3, activation="relu")(inputs)
    return tf.keras.Model(inputs, L.Dense(3)(L.Flatten()(x)))


def _branching():
    import tensorflow as tf

    L = _layers()
    inputs = tf.keras.Input((6,))
    return tf.keras.Model(inputs, L.Add(name="add")([L.Dense(3)(inputs), L.Dense(3)(inputs)]))


def _unbatched():
    L = _layers()
    model = _seq(L.Dense(5), L.ReLU(), L.Dense(3))
    model.build((None, 6))
    return model


# Table entry -> a model exercising it. Every entry that is not refused has one (a test checks).
SUPPORTED = {
    "Conv2D": lambda: _seq(_layers().Conv2D(4, 3, strides=2, padding="same", activation="relu", input_shape=(9, 9, 2)), _layers().Flatten(), _layers().Dense(3)),
    "DepthwiseConv2D": lambda: _seq(_layers().DepthwiseConv2D(3, strides=2, depth_multiplier=2, padding="same", input_shape=(9, 9, 2)), _layers().Flatten(), _layers().Dense(3)),
    "Dense": lambda: _seq(_layers().Dense(6, activation="relu", input_shape=(7,)), _layers().Dense(3)),
    "AveragePooling2D": lambda: _image(_layers().AveragePooling2D(3, strides=2, padding="same")),
    "MaxPooling2D": lambda: _image(_layers().MaxPooling2D(2), shape=(9, 9, 2)),
    "MaxPooling2D-same": lambda: _image(_layers().MaxPooling2D(3, strides=2, padding="same"), shape=(9, 9, 2)),
    "GlobalAveragePooling2D": lambda: _seq(_layers().Conv2D(4, 3, input_shape=(8, 8, 2)), _layers().GlobalAveragePooling2D(), _layers().Dense(3)),
    "GlobalMaxPooling2D": lambda: _seq(_layers().Conv2D(4, 3, input_shape=(8, 8, 2)), _layers().GlobalMaxPooling2D(), _layers().Dense(3)),
    "Flatten": lambda: _image(),
    "Reshape": lambda: _seq(_layers().Reshape((4, 4, 1), input_shape=(16,)), _layers().Conv2D(2, 2), _layers().Flatten(), _layers().Dense(3)),
    "ZeroPadding2D": lambda: _seq(_layers().ZeroPadding2D(((1, 2), (0, 1)), input_shape=(6, 6, 2)), _layers().Conv2D(2, 3), _layers().Flatten(), _layers().Dense(3)),
    "Activation": lambda: _image(_layers().Activation("relu"), _layers().Activation("linear")),
    "ReLU": lambda: _image(_layers().ReLU()),
    "BatchNormalization": lambda: _image(_layers().BatchNormalization(), _layers().ReLU()),
    "BatchNormalization-no-bias": lambda: _seq(_layers().Conv2D(4, 3, use_bias=False, input_shape=(8, 8, 2)), _layers().BatchNormalization(center=False), _layers().Flatten(), _layers().Dense(3)),
    "BatchNormalization-depthwise": lambda: _seq(_layers().DepthwiseConv2D(3, depth_multiplier=2, input_shape=(8, 8, 2)), _layers().BatchNormalization(scale=False), _layers().Flatten(), _layers().Dense(3)),
    "BatchNormalization-dense": lambda: _seq(_layers().Dense(5, input_shape=(6,)), _layers().BatchNormalization(), _layers().Dense(3)),
    "Softmax": lambda: _seq(_layers().Dense(5, activation="relu", input_shape=(6,)), _layers().Dense(3), _layers().Softmax()),
    "softmax-activation": lambda: _seq(_layers().Flatten(input_shape=(4, 4, 1)), _layers().Dense(10, activation="softmax")),
    "sigmoid-last": lambda: _seq(_layers().Dense(5, activation="relu", input_shape=(6,)), _layers().Dense(2), _layers().Activation("sigmoid")),
    "InputLayer": _functional_chain,
    "Dropout": lambda: _image(_layers().Dropout(0.5)),
    "SpatialDropout2D": lambda: _image(_layers().SpatialDropout2D(0.5)),
    "GaussianNoise": lambda: _image(_layers().GaussianNoise(0.3)),
    "GaussianDropout": lambda: _image(_layers().GaussianDropout(0.3)),
    "AlphaDropout": lambda: _image(_layers().AlphaDropout(0.3)),
    "no-fixed-batch": _unbatched,
}

# Name -> (model, the message's expected pattern): refused before anything is shared.
REFUSED = {
    "LeakyReLU": (lambda: _image(_layers().LeakyReLU(name="leaky")), r"layer 2 'leaky' \(LeakyReLU\): not supported: .*use ReLU"),
    "sigmoid-inside": (lambda: _seq(_layers().Dense(5, activation="sigmoid", name="hidden", input_shape=(6,)), _layers().Dense(3)),
                       r"layer 1 'hidden' \(Dense\): sigmoid inside the network is not supported: .*polynomial"),
    "tanh": (lambda: _image(_layers().Activation("tanh", name="squash")), r"layer 2 'squash' \(Activation\): activation 'tanh' is not supported: .*polynomial"),
    "BatchNormalization-after-relu": (lambda: _seq(_layers().Dense(5, activation="relu", input_shape=(6,)), _layers().BatchNormalization(name="bn"), _layers().Dense(3)),
                                      r"layer 2 'bn' \(BatchNormalization\): cannot be folded after layer 1 .*move the activation after it"),
    "BatchNormalization-first": (lambda: _seq(_layers().BatchNormalization(name="bn", input_shape=(6,)), _layers().Dense(3)),
                                 r"layer 1 'bn' \(BatchNormalization\): cannot be folded as the first layer"),
    "ReLU6": (lambda: _image(_layers().ReLU(max_value=6.0, name="relu6")), r"layer 2 'relu6' \(ReLU\): ReLU with .*max_value.* is not supported"),
    "Dense-on-images": (lambda: _seq(_layers().Conv2D(2, 3, input_shape=(6, 6, 1)), _layers().Dense(3, name="dense_images")),
                        r"layer 2 'dense_images' \(Dense\): Dense on a rank 4 input .*add Flatten before it"),
    "branching-functional": (_branching, r"'add' \(Add\).* single chain"),
    "dilated-Conv2D": (lambda: _seq(_layers().Conv2D(2, 3, dilation_rate=2, name="dilated", input_shape=(8, 8, 1)), _layers().Flatten(), _layers().Dense(3)),
                       r"layer 1 'dilated' \(Conv2D\): unsupported option: .*dilation_rate"),
    "Conv1D": (lambda: _seq(_layers().Conv1D(2, 3, name="conv1d", input_shape=(8, 2)), _layers().Flatten(), _layers().Dense(3)),
               r"layer 1 'conv1d' \(Conv1D\): not supported: not implemented in SecureNN serving; supported layers: "),
}


def randomize_batch_norms(model, seed=0):
    """Fresh BatchNormalization layers are identities; give them statistics worth folding."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ == "BatchNormalization":
            layer.set_weights([rng.uniform(0.5, 2.0, w.shape).astype(np.float32) for w in layer.get_weights()])
    return model


def clear_inputs(model, count=100, seed=0):
    """`count` inputs on which Keras' top two outputs differ by more than SecureNN's fixed-point
    error (~0.01), so that argmax agreement tests the protocol rather than ties."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (20 * count,) + tuple(model.input_shape[1:])).astype(np.float32)
    y = model(x, training=False).numpy().reshape(len(x), -1)
    top = np.sort(y, axis=1)
    clear = x[top[:, -1] - top[:, -2] > 0.05] if y.shape[1] > 1 else x
    assert len(clear) >= count, f"only {len(clear)} inputs with a clear answer"
    return clear[:count]
