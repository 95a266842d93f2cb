"""Models nobody here tuned for SecureNN: the Keras patterns users bring, trained on the digits.

Each mixes layers the owner step must convert (BatchNormalization, Dropout, a final softmax or
sigmoid, a functional chain, max pooling, padding, ReLU layers, no fixed batch size). The bench
measures them against plaintext Keras, and the integration tests serve them on real players.
"""
import logging
import time
from pathlib import Path

from privatemodel.runtime import reference

log = logging.getLogger(__name__)


def _bn_maxpool_softmax():
    import tensorflow as tf

    layers = tf.keras.layers
    return tf.keras.Sequential([
        layers.Conv2D(8, 3, strides=2, use_bias=False, input_shape=reference.INPUT_SHAPE),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dropout(0.3),
        layers.Dense(reference.NUM_CLASSES, activation="softmax"),
    ], name="bn_maxpool_softmax")


def _functional_depthwise_gap():
    import tensorflow as tf

    layers = tf.keras.layers
    inputs = tf.keras.Input(reference.INPUT_SHAPE)
    x = layers.ZeroPadding2D(1)(inputs)
    x = layers.Conv2D(16, 3, strides=2, activation="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = layers.BatchNormalization()(x)
    x = layers.Activation("relu")(x)
    x = layers.Conv2D(32, 3, strides=2, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.GaussianNoise(0.05)(x)
    x = layers.Dense(reference.NUM_CLASSES)(x)
    outputs = layers.Softmax()(x)
    return tf.keras.Model(inputs, outputs, name="functional_depthwise_gap")


def _mlp_sigmoid():
    import tensorflow as tf

    layers = tf.keras.layers
    return tf.keras.Sequential([
        layers.AveragePooling2D(2, input_shape=reference.INPUT_SHAPE),
        layers.Reshape((14 * 14,)),
        layers.Dense(32),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.GaussianDropout(0.1),
        layers.AlphaDropout(0.1),
        layers.Dense(reference.NUM_CLASSES, activation="sigmoid"),
    ], name="mlp_sigmoid")


def _strided_globalmax():
    import tensorflow as tf

    layers = tf.keras.layers
    return tf.keras.Sequential([
        layers.Conv2D(16, 5, strides=2, padding="same", activation="relu", input_shape=reference.INPUT_SHAPE),
        layers.SpatialDropout2D(0.1),
        layers.Conv2D(32, 3, strides=2),
        layers.ReLU(),
        layers.GlobalMaxPooling2D(),
        layers.Dense(reference.NUM_CLASSES),
    ], name="strided_globalmax")


ARCHITECTURES = {
    "bn_maxpool_softmax": _bn_maxpool_softmax,
    "functional_depthwise_gap": _functional_depthwise_gap,
    "mlp_sigmoid": _mlp_sigmoid,
    "strided_globalmax": _strided_globalmax,
}


def trained_path(name: str, directory=None, epochs: int = 15) -> Path:
    """Train architecture `name` on the digits once and cache its .h5; later calls reuse it."""
    import tensorflow as tf

    path = Path(directory or reference.cache_dir()) / f"architecture-{name}.h5"
    if path.is_file():
        return path
    started = time.monotonic()
    tf.keras.utils.set_random_seed(reference.SEED)
    x_train, y_train, x_test, y_test = reference.load_digits()
    model = ARCHITECTURES[name]()
    last = model.layers[-1]
    if last.get_config().get("activation") == "sigmoid":
        loss, y_train, y_test = "binary_crossentropy", tf.one_hot(y_train, 10), tf.one_hot(y_test, 10)
    elif last.get_config().get("activation") == "softmax" or isinstance(last, tf.keras.layers.Softmax):
        loss = "sparse_categorical_crossentropy"
    else:
        loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer=tf.keras.optimizers.Adam(0.01), loss=loss, metrics=["accuracy"])
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    reference.save_h5(model, path)
    log.info("trained %s in %.1f s, test accuracy %.3f, saved %s", name, time.monotonic() - started, accuracy, path)
    return path
