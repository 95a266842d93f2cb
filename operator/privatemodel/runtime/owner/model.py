"""Loading a Keras model from .h5 and checking that SecureNN can serve it, before any share is made."""
from dataclasses import dataclass
from pathlib import Path

import h5py


class ModelError(ValueError):
    """The model cannot be served privately; the message says what and where."""


@dataclass(frozen=True)
class ModelSummary:
    """What serving needs to know about a model; none of it is secret."""

    config: dict  # Keras Sequential config: the architecture, no weights
    input_shape: tuple  # without the batch dimension
    output_shape: tuple  # without the batch dimension
    weight_shapes: tuple  # one shape per weight, in get_weights() order

    def to_dict(self) -> dict:
        return {
            "config": self.config,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "weight_shapes": [list(s) for s in self.weight_shapes],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSummary":
        return cls(
            config=data["config"],
            input_shape=tuple(data["input_shape"]),
            output_shape=tuple(data["output_shape"]),
            weight_shapes=tuple(tuple(s) for s in data["weight_shapes"]),
        )


def load_keras_model(path, architecture=None):
    """A full Keras .h5 (architecture and weights), or a weights-only .h5 plus architecture JSON."""
    import tensorflow as tf

    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as h5:
            has_architecture = "model_config" in h5.attrs
            has_weights = "model_weights" in h5 or "layer_names" in h5.attrs
    except OSError:
        raise ModelError(f"{path}: not a readable HDF5 file (corrupt, truncated, or another format)") from None
    if not has_weights:
        raise ModelError(f"{path}: an HDF5 file but not a Keras model (no model weights in it)")

    try:
        if architecture is None:
            if not has_architecture:
                raise ModelError(
                    f"{path}: holds weights only, no architecture; pass the architecture JSON too"
                )
            return tf.keras.models.load_model(path, compile=False)
        model = tf.keras.models.model_from_json(Path(architecture).read_text())
        model.load_weights(path)
        return model
    except ModelError:
        raise
    except OSError as error:
        raise ModelError(f"cannot read {error.filename or architecture}: {error.strerror or error}") from None
    except (ValueError, TypeError, KeyError) as error:
        source = f"{path} with architecture {architecture}" if architecture else str(path)
        raise ModelError(f"{source}: not a loadable Keras model: {error}") from None


# Layers tfe.keras builds but SecureNN cannot run at prediction time (found by running them).
_FAILS_UNDER_SECURENN = {
    "MaxPooling2D": "SecureNN in tf-encrypted 0.9.1 fails at run time on max pooling; use AveragePooling2D",
}


def summarize(model, expected_input_shape=None, expected_output_shape=None) -> ModelSummary:
    """Check every layer against what tf-encrypted implements; report the first problem by position."""
    from privatemodel.runtime.mpc.tfe import tfe

    if model.__class__.__name__ != "Sequential":
        raise ModelError(
            f"the model is a {model.__class__.__name__} model; only Sequential models can be served"
        )
    config = model.get_config()
    position = 0
    for layer_config in config["layers"]:
        kind = layer_config["class_name"]
        if kind == "InputLayer":
            continue
        position += 1
        name = layer_config["config"].get("name", "?")
        where = f"layer {position} '{name}' ({kind})"
        if kind in _FAILS_UNDER_SECURENN:
            raise ModelError(f"{where}: not supported: {_FAILS_UNDER_SECURENN[kind]}")
        layer_class = getattr(tfe.keras.layers, kind, None)
        if kind == "Input" or layer_class is None:
            supported = sorted(n for n in tfe.keras.layers.__all__ if n != "Input")
            raise ModelError(f"{where}: not supported by SecureNN serving; supported layers: {', '.join(supported)}")
        try:
            layer_class(**layer_config["config"])
        except (NotImplementedError, ValueError, TypeError, KeyError) as error:
            raise ModelError(f"{where}: unsupported option: {error}") from None

    input_shape = tuple(model.input_shape[1:])
    output_shape = tuple(model.output_shape[1:])
    _check_shape("input", input_shape, expected_input_shape)
    _check_shape("output", output_shape, expected_output_shape)
    return ModelSummary(
        config=config,
        input_shape=input_shape,
        output_shape=output_shape,
        weight_shapes=tuple(tuple(w.shape) for w in model.get_weights()),
    )


def _check_shape(what, actual, expected):
    """Expected shapes carry the batch dimension, as users write them (1, 28, 28, 1)."""
    if expected is None:
        return
    if tuple(expected[1:]) != tuple(actual):
        raise ModelError(
            f"{what} shape mismatch: expected {tuple(expected)}, the model has {(None,) + tuple(actual)}"
        )
