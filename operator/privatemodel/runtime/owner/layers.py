"""The one table of Keras layers and what private serving does with each.

The CLI (`privatemodel layers`, `share`'s errors) and README print it; tests build a model per
entry and check it end to end (computed, dropped, folded, client) or refused before sharing.
"""
from dataclasses import dataclass

COMPUTED = "computed"  # run on the shares by SecureNN
DROPPED = "dropped"  # identity at inference: removed when converting
FOLDED = "folded"  # merged into the previous layer's weights when sharing
CLIENT = "client"  # applied by the client to the reconstructed output, only as the model's last step
REFUSED = "refused"


@dataclass(frozen=True)
class Rule:
    treatment: str
    note: str


_IDENTITY = "identity at inference"
# Measured under SecureNN over [-12, 12]; inside a network nothing bounds the inputs to [-4, 4].
_APPROXIMATED = (
    "SecureNN approximates it by a polynomial (measured: sigmoid off by 0.02, tanh by 0.24 within "
    "[-4, 4]; by 26 and 8500 at -12); use relu inside the network, or sigmoid/softmax as the last step only"
)

LAYERS = {
    "Conv2D": Rule(COMPUTED, "strides, padding valid/same; no dilation, groups 1, channels_last; activation as for Activation"),
    "DepthwiseConv2D": Rule(COMPUTED, "strides, padding valid/same, depth_multiplier; no dilation; activation as for Activation"),
    "Dense": Rule(COMPUTED, "on flat (rank 2) inputs: Flatten first; activation as for Activation"),
    "AveragePooling2D": Rule(COMPUTED, "padding valid/same, any pool size and strides"),
    "MaxPooling2D": Rule(COMPUTED, "padding valid/same; max(a, b) from SecureNN's private comparison"),
    "GlobalAveragePooling2D": Rule(COMPUTED, "channels_last"),
    "GlobalMaxPooling2D": Rule(COMPUTED, "channels_last, keepdims=False"),
    "Flatten": Rule(COMPUTED, "channels_last"),
    "Reshape": Rule(COMPUTED, "any target shape"),
    "ZeroPadding2D": Rule(COMPUTED, "public zero padding of the shares, channels_last"),
    "Activation": Rule(COMPUTED, "relu computed; linear dropped; softmax/sigmoid only as the last step (client); others refused"),
    "ReLU": Rule(COMPUTED, "plain relu only: max_value None, negative_slope 0, threshold 0"),
    "BatchNormalization": Rule(FOLDED, "into the directly preceding Conv2D, DepthwiseConv2D or Dense without activation"),
    "Softmax": Rule(CLIENT, "only as the last step, over the last axis"),
    "InputLayer": Rule(DROPPED, "the input shape is kept"),
    "Dropout": Rule(DROPPED, _IDENTITY),
    "SpatialDropout2D": Rule(DROPPED, _IDENTITY),
    "GaussianNoise": Rule(DROPPED, _IDENTITY),
    "GaussianDropout": Rule(DROPPED, _IDENTITY),
    "AlphaDropout": Rule(DROPPED, _IDENTITY),
    "LeakyReLU": Rule(REFUSED, "not implemented in SecureNN serving; use ReLU"),
    "PReLU": Rule(REFUSED, "not implemented in SecureNN serving; use ReLU"),
    "ELU": Rule(REFUSED, "not implemented in SecureNN serving; use ReLU"),
    "Lambda": Rule(REFUSED, "code inside a model file is never run; express it with supported layers"),
    "Add": Rule(REFUSED, "needs a graph with branches; only single chains of layers are served"),
    "Concatenate": Rule(REFUSED, "needs a graph with branches; only single chains of layers are served"),
}

# Activation functions, wherever they appear (Activation layers or a layer's `activation`).
ACTIVATIONS = {
    "linear": Rule(DROPPED, "identity"),
    "relu": Rule(COMPUTED, "exact (SecureNN's private comparison)"),
    "softmax": Rule(CLIENT, "only as the last step: the client applies it to the reconstructed logits"),
    "sigmoid": Rule(CLIENT, "only as the last step; inside the network: " + _APPROXIMATED),
    "tanh": Rule(REFUSED, _APPROXIMATED),
}

UNLISTED = "not implemented in SecureNN serving"


def rule(kind: str) -> Rule:
    return LAYERS.get(kind, Rule(REFUSED, UNLISTED))


def supported_summary() -> str:
    """One line: what `share` accepts, for error messages."""
    accepted = sorted(kind for kind, r in LAYERS.items() if r.treatment != REFUSED)
    return "supported layers: " + ", ".join(accepted) + " (`privatemodel layers` for details)"


def table_text() -> str:
    """The whole table as text, for `privatemodel layers` and README."""
    width = max(len(kind) for kind in LAYERS)
    lines = [f"{'layer':{width}}  {'treatment':9}  notes"]
    lines += [f"{kind:{width}}  {r.treatment:9}  {r.note}" for kind, r in LAYERS.items()]
    lines += ["", "activation functions (Activation layers, or a layer's activation=):"]
    lines += [f"{name:{width}}  {r.treatment:9}  {r.note}" for name, r in ACTIVATIONS.items()]
    lines += ["", f"any other layer: refused ({UNLISTED}); functional models only when they are a single chain."]
    return "\n".join(lines)
