"""Loading a Keras model from .h5 and checking that SecureNN can serve it, before any share is made."""
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from privatemodel.runtime.owner import convert, layers as table
from privatemodel.runtime.owner.convert import ModelError

log = logging.getLogger(__name__)

# Files larger than this are refused before they are opened. SecureNN serving of a model this size
# (some 60 million float32 weights) would need far more memory than a player has; the reference
# CNN is 0.1 MB.
MAX_MODEL_BYTES = 256 * 1024 * 1024


@dataclass(frozen=True)
class ModelSummary:
    """What serving needs to know about a model; none of it is secret."""

    config: dict  # converted Keras Sequential config: the architecture, no weights
    input_shape: tuple  # without the batch dimension
    output_shape: tuple  # without the batch dimension
    weight_shapes: tuple  # one shape per converted weight, in get_weights() order
    output_activation: str | None = None  # the client applies it after reconstruction

    def to_dict(self) -> dict:
        return {
            "config": self.config,
            "input_shape": list(self.input_shape),
            "output_shape": list(self.output_shape),
            "weight_shapes": [list(s) for s in self.weight_shapes],
            "output_activation": self.output_activation,
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ModelSummary":
        return cls(
            config=data["config"],
            input_shape=tuple(data["input_shape"]),
            output_shape=tuple(data["output_shape"]),
            weight_shapes=tuple(tuple(s) for s in data["weight_shapes"]),
            output_activation=data.get("output_activation"),
        )


def load_keras_model(path, architecture=None):
    """A full Keras .h5 (architecture and weights), or a weights-only .h5 plus architecture JSON."""
    import tensorflow as tf

    path = Path(path)
    for file in (path, *([Path(architecture)] if architecture else [])):
        if not file.is_file():
            raise ModelError(f"{file}: no such file")
        if (size := file.stat().st_size) > MAX_MODEL_BYTES:
            raise ModelError(f"{file}: {size} bytes, over the {MAX_MODEL_BYTES} ({MAX_MODEL_BYTES >> 20} MiB) a model"
                             " file may have; refused before reading it")
    try:
        with h5py.File(path, "r") as h5:
            config_text = h5.attrs.get("model_config")
            has_weights = "model_weights" in h5 or "layer_names" in h5.attrs
    except OSError:
        raise ModelError(f"{path}: not a readable HDF5 file (corrupt, truncated, or another format)") from None
    if not has_weights:
        raise ModelError(f"{path}: an HDF5 file but not a Keras model (no model weights in it)")

    try:
        if architecture is None:
            if config_text is None:
                raise ModelError(
                    f"{path}: holds weights only, no architecture; pass the architecture JSON too"
                )
            refuse_before_loading(config_text, str(path))
            return tf.keras.models.load_model(path, compile=False)
        architecture_text = Path(architecture).read_text()
        refuse_before_loading(architecture_text, str(architecture))
        model = tf.keras.models.model_from_json(architecture_text)
        model.load_weights(path)
        return model
    except ModelError:
        raise
    except OSError as error:
        raise ModelError(f"cannot read {error.filename or architecture}: {error.strerror or error}") from None
    except (ValueError, TypeError, KeyError) as error:
        source = f"{path} with architecture {architecture}" if architecture else str(path)
        raise ModelError(f"{source}: not a loadable Keras model: {error}") from None


def refuse_before_loading(config_text, source: str) -> None:
    """Keras runs a Lambda layer's code while loading the model: refuse what the layer table
    refuses (or does not know) from the plain JSON config, before Keras sees it."""
    try:
        entries = [e for e in json.loads(config_text)["config"]["layers"] if e["class_name"] != "InputLayer"]
    except (ValueError, TypeError, KeyError):
        raise ModelError(f"{source}: the model's architecture is not a Keras model config") from None
    for position, entry in enumerate(entries, 1):
        rule = table.rule(str(entry["class_name"]))
        if rule.treatment == table.REFUSED:
            name = (entry.get("config") or {}).get("name", "?")
            raise ModelError(
                f"{source}: layer {position} '{name}' ({entry['class_name']}): not supported: {rule.note}; "
                f"{table.supported_summary()}; refused before loading the model, so none of its code ran"
            )


def summarize(model, expected_input_shape=None, expected_output_shape=None) -> tuple[ModelSummary, list]:
    """Convert the model for SecureNN (or refuse it, naming the layer) and check the result.

    Returns what serving needs to know and the converted weights to share.
    """
    converted = convert.convert(model)
    for note in converted.notes:
        log.info("%s", note)
    for step in converted.steps:
        _check_options(step)
    convert.check_equivalent(model, converted)

    input_shape = tuple(model.input_shape[1:])
    output_shape = tuple(model.output_shape[1:])
    _check_shape("input", input_shape, expected_input_shape)
    _check_shape("output", output_shape, expected_output_shape)
    summary = ModelSummary(
        config=converted.config,
        input_shape=input_shape,
        output_shape=output_shape,
        weight_shapes=tuple(tuple(w.shape) for w in converted.weights),
        output_activation=converted.output_activation,
    )
    return summary, converted.weights


def check_range(summary: ModelSummary, weights: list, max_abs_value: float) -> None:
    """Weights beyond the fixed-point range would wrap around in the ring, and NaN or infinity
    has no encoding at all: garbage, silently."""
    owners = [
        f"'{layer['config']['name']}' ({layer['class_name']}) {part}"
        for layer in summary.config["layers"]
        for part in (("kernel", "bias") if layer["config"].get("use_bias", True) else ("kernel",))
        if layer["class_name"] in convert.KERNEL_LAYERS
    ]
    for owner, weight in zip(owners, weights):
        largest = float(np.abs(weight).max()) if weight.size else 0.0
        if not np.isfinite(largest):
            raise ModelError(f"{owner}: weights up to {largest:g} (after conversion): NaN and infinity have no fixed-point encoding; repair the model")
        if largest >= max_abs_value:
            raise ModelError(
                f"{owner}: weights up to {largest:g} (after conversion) exceed the fixed-point range "
                f"±{max_abs_value:g}; rescale the model (e.g. a BatchNormalization with a tiny variance)"
            )


def _check_options(step):
    """tf-encrypted's layers refuse the Keras options they do not implement (e.g. dilation_rate)."""
    from privatemodel.runtime.mpc.tfe import tfe

    try:
        getattr(tfe.keras.layers, step.kind)(**step.config)
    except (NotImplementedError, ValueError, TypeError, KeyError) as error:
        raise ModelError(f"{step.where}: unsupported option: {error}") from None


def _check_shape(what, actual, expected):
    """Expected shapes carry the batch dimension, as users write them (1, 28, 28, 1)."""
    if expected is None:
        return
    if tuple(expected[1:]) != tuple(actual):
        raise ModelError(
            f"{what} shape mismatch: expected {tuple(expected)}, the model has {(None,) + tuple(actual)}"
        )
