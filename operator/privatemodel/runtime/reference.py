"""The reference model: a small CNN trained on scikit-learn's bundled 8x8 digits, resized to 28x28.

No downloads: the digits ship inside scikit-learn, so the demo and the tests run offline.
"""
import logging
import os
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

INPUT_SHAPE = (28, 28, 1)
NUM_CLASSES = 10
SEED = 7


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "privatemodel"


def build_model():
    import tensorflow as tf

    layers = tf.keras.layers
    return tf.keras.Sequential(
        [
            layers.Conv2D(10, (3, 3), batch_input_shape=(None,) + INPUT_SHAPE),
            layers.AveragePooling2D((2, 2)),
            layers.Activation("relu"),
            layers.Conv2D(32, (3, 3)),
            layers.AveragePooling2D((2, 2)),
            layers.Activation("relu"),
            layers.Conv2D(64, (3, 3)),
            layers.AveragePooling2D((2, 2)),
            layers.Activation("relu"),
            layers.Flatten(),
            layers.Dense(NUM_CLASSES, name="logit"),
        ]
    )


def load_digits():
    """(x_train, y_train, x_test, y_test): float32 images in [0, 1] of shape (n, 28, 28, 1)."""
    import tensorflow as tf
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    digits = sklearn_digits()
    images = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    images = tf.image.resize(images, INPUT_SHAPE[:2], method="bilinear").numpy()
    x_train, x_test, y_train, y_test = train_test_split(
        images, digits.target, test_size=0.25, random_state=SEED, stratify=digits.target
    )
    return x_train, y_train.astype(np.int64), x_test, y_test.astype(np.int64)


def trained_model_path(path=None, epochs=20) -> Path:
    """Train the reference CNN once and cache it; later calls reuse the cached .h5."""
    import tensorflow as tf

    path = Path(path) if path else cache_dir() / "reference-cnn.h5"
    if path.is_file():
        log.info("reusing trained reference model %s", path)
        return path
    started = time.monotonic()
    tf.keras.utils.set_random_seed(SEED)
    x_train, y_train, x_test, y_test = load_digits()
    model = build_model()
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.005),
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    log.info("training the reference CNN on %d digits, %d epochs", len(x_train), epochs)
    model.fit(x_train, y_train, batch_size=32, epochs=epochs, verbose=0)
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    save_h5(model, path)
    log.info("trained in %.1f s, test accuracy %.3f, saved %s", time.monotonic() - started, accuracy, path)
    return path


def save_h5(model, path: Path) -> None:
    """Saved beside and renamed into place: a cached model is never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.h5")
    model.save(partial, save_format="h5")
    partial.rename(path)
