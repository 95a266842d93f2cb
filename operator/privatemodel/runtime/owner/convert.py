"""From the Keras model a user has to the plain Sequential config and weights tfe.keras builds.

Runs in the model owner's step, on plaintext weights, before anything is shared: every layer is
computed, dropped, folded or left to the client as owner/layers.py says, or the model is refused
naming the layer, its position and what to do instead. The result is checked against the original
model in plaintext, so a conversion can never change answers silently.
"""
from dataclasses import dataclass

import numpy as np

from privatemodel.runtime.client.postprocess import apply_output_activation
from privatemodel.runtime.owner import layers as table


class ModelError(ValueError):
    """The model cannot be served privately; the message says what and where."""


@dataclass
class Step:
    """One layer of the converted model, and the original layer it came from."""

    kind: str
    config: dict
    weights: list
    where: str


@dataclass
class Converted:
    config: dict  # Keras Sequential config, JSON types only
    weights: list  # numpy arrays, in the converted model's get_weights() order
    output_activation: str | None  # applied by the client after reconstruction
    steps: list  # the converted layers, each naming the original layer it came from
    notes: list  # what was dropped or folded, for the log


KERNEL_LAYERS = ("Conv2D", "DepthwiseConv2D", "Dense")


def plain_json(value):
    """Keras configs may hold numpy scalars or arrays (layers.ReLU does); JSON needs plain types."""
    if isinstance(value, dict):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_json(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain_json(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def convert(model) -> Converted:
    chain = layer_chain(model)
    steps, notes = [], []
    for position, layer in enumerate(chain, 1):
        kind = type(layer).__name__
        config = plain_json(layer.get_config())
        where = f"layer {position} '{layer.name}' ({kind})"
        rule = table.rule(kind)
        if rule.treatment == table.REFUSED:
            raise ModelError(f"{where}: not supported: {rule.note}; {table.supported_summary()}")
        if rule.treatment == table.DROPPED:
            notes.append(f"dropped {where}: {rule.note}")
        elif kind == "BatchNormalization":
            _fold_batch_norm(steps, layer, config, where)
            notes.append(f"folded {where} into {steps[-1].where}")
        elif kind == "Activation":
            _add_activation(steps, config["activation"], where)
        elif kind == "Softmax":
            if config.get("axis", -1) not in (-1, len(layer.output_shape) - 1):
                raise ModelError(f"{where}: softmax over axis {config['axis']}: only the last axis is supported")
            _add_activation(steps, "softmax", where)
        elif kind == "ReLU":
            _check_plain_relu(config, where)
            _add_activation(steps, "relu", where)
        else:
            _add_layer(steps, layer, kind, config, where)
    output_activation = _take_output_activation(steps)
    for step in steps:
        if step.kind == "Activation" and step.config["activation"] != "relu":
            name = step.config["activation"]
            raise ModelError(f"{step.where}: {name} inside the network is not supported: {table.ACTIVATIONS[name].note}")
    if not any(step.kind != "Activation" for step in steps):
        raise ModelError("the model computes nothing SecureNN serves (no layer left after conversion)")
    return Converted(
        config=_sequential_config(model, steps),
        weights=[w for step in steps for w in step.weights],
        output_activation=output_activation,
        steps=steps,
        notes=notes,
    )


def layer_chain(model) -> list:
    """The layers in order, without InputLayer; functional models only if they are one chain."""
    import tensorflow as tf

    kind = type(model).__name__
    if isinstance(model, tf.keras.Sequential):
        return list(model.layers)
    if not isinstance(model, tf.keras.Model) or len(model.inputs) != 1 or len(model.outputs) != 1:
        raise ModelError(f"the model is a {kind} with several inputs or outputs; only single chains of layers are served")
    chain, tensor = [], model.outputs[0]
    while True:
        layer = tensor.node.layer
        if isinstance(layer, tf.keras.layers.InputLayer):
            break
        inbound = tensor.node.keras_inputs
        if len(inbound) != 1:
            raise ModelError(
                f"the model is a {kind} whose layer '{layer.name}' ({type(layer).__name__}) has {len(inbound)} inputs: "
                "only models that are a single chain of layers are served"
            )
        chain.append(layer)
        tensor = inbound[0]
    chain.reverse()
    if len(chain) != sum(not isinstance(layer, tf.keras.layers.InputLayer) for layer in model.layers):
        raise ModelError(f"the model is a {kind} with layers off its main path: only single chains of layers are served")
    return chain


def _add_layer(steps, layer, kind, config, where):
    """A layer SecureNN computes; a kernel layer's activation becomes an Activation step after it."""
    if config.get("data_format", "channels_last") != "channels_last":
        raise ModelError(f"{where}: data_format {config['data_format']}: only channels_last is supported")
    if kind == "Dense" and len(layer.input_shape) != 2:
        raise ModelError(f"{where}: Dense on a rank {len(layer.input_shape)} input {layer.input_shape}: add Flatten before it")
    if kind == "GlobalMaxPooling2D" and config.get("keepdims"):
        raise ModelError(f"{where}: keepdims=True is not supported; add a Reshape after it instead")
    activation = "linear"
    if kind in KERNEL_LAYERS:
        activation = config.get("activation") or "linear"
        config = dict(config, activation="linear")
    config.pop("batch_input_shape", None)
    steps.append(Step(kind, config, [np.asarray(w) for w in layer.get_weights()], where))
    _add_activation(steps, activation, where)


def _add_activation(steps, name, where):
    if name not in table.ACTIVATIONS:
        raise ModelError(f"{where}: activation {name!r} is not supported; supported: relu, and softmax/sigmoid as the last step")
    rule = table.ACTIVATIONS[name]
    if rule.treatment == table.REFUSED:
        raise ModelError(f"{where}: activation {name!r} is not supported: {rule.note}")
    if rule.treatment != table.DROPPED:
        steps.append(Step("Activation", {"name": f"privatemodel_{name}_{len(steps)}", "activation": name}, [], where))


def _check_plain_relu(config, where):
    if config.get("max_value") is not None or config.get("negative_slope") or config.get("threshold"):
        options = {k: config.get(k) for k in ("max_value", "negative_slope", "threshold")}
        raise ModelError(f"{where}: ReLU with {options} is not supported: only plain relu (max_value None, negative_slope 0, threshold 0)")


def _take_output_activation(steps):
    """A softmax or sigmoid as the very last step is left to the client."""
    if steps and steps[-1].kind == "Activation" and table.ACTIVATIONS[steps[-1].config["activation"]].treatment == table.CLIENT:
        return steps.pop().config["activation"]
    return None


def _fold_batch_norm(steps, layer, config, where):
    """y = gamma * (x - mean) / sqrt(var + eps) + beta, with x = w.u + b, is one affine map w'.u + b'."""
    previous = steps[-1] if steps else None
    if previous is None or previous.kind not in KERNEL_LAYERS:
        after = f"after {previous.where}" if previous else "as the first layer"
        raise ModelError(
            f"{where}: cannot be folded {after}: BatchNormalization is served only directly after a "
            "Conv2D, DepthwiseConv2D or Dense without activation (move the activation after it)"
        )
    axis = config["axis"]
    axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
    rank = len(layer.input_shape)
    if axis not in (-1, rank - 1):
        raise ModelError(f"{where}: normalizes axis {config['axis']}; only the channels (last) axis can be folded")
    values = iter(layer.get_weights())
    gamma = next(values) if config["scale"] else 1.0
    beta = next(values) if config["center"] else 0.0
    mean, variance = next(values), next(values)
    factor = gamma / np.sqrt(variance + config["epsilon"])

    kernel = previous.weights[0].astype(np.float64)
    channels = kernel.shape[-1] if previous.kind != "DepthwiseConv2D" else kernel.shape[2] * kernel.shape[3]
    if channels != len(mean):
        raise ModelError(f"{where}: {len(mean)} channels, but {previous.where} outputs {channels}")
    if previous.kind == "DepthwiseConv2D":
        # Kernel (h, w, in, multiplier): output channel c*multiplier+m comes from kernel[..., c, m].
        kernel = kernel * factor.reshape(kernel.shape[2:])
    else:
        kernel = kernel * factor
    bias = previous.weights[1].astype(np.float64) if previous.config.get("use_bias", True) else np.zeros(len(mean))
    previous.weights = [kernel.astype(np.float32), ((bias - mean) * factor + beta).astype(np.float32)]
    previous.config = dict(previous.config, use_bias=True)


def _sequential_config(model, steps) -> dict:
    first = steps[0].config
    first["batch_input_shape"] = [None] + [int(d) for d in model.input_shape[1:]]
    return {"name": model.name, "layers": [{"class_name": s.kind, "config": s.config} for s in steps]}


def check_equivalent(model, converted: Converted, samples: int = 16, seed: int = 0) -> float:
    """Plaintext: the converted model (plus the client's activation) against the original one.

    Folding and dropping are exact algebra; only float rounding may differ. Returns the max
    difference; raises if it exceeds rounding, which would be a bug in the conversion.
    """
    import tensorflow as tf

    plain = tf.keras.Sequential.from_config(converted.config)
    plain.set_weights(converted.weights)
    x = np.random.default_rng(seed).uniform(-1, 1, (samples,) + tuple(model.input_shape[1:])).astype(np.float32)
    expected = model(x, training=False).numpy()
    actual = apply_output_activation(plain(x, training=False).numpy(), converted.output_activation)
    difference = float(np.abs(actual - expected).max())
    if difference > 1e-4 * (1 + float(np.abs(expected).max())):
        raise ModelError(f"converting the model changed its outputs by up to {difference:g} (a privatemodel bug; please report it)")
    return difference
