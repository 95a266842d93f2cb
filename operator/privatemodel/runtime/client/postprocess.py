"""What the client applies to the reconstructed output: the model's last activation, if any.

SecureNN cannot compute softmax, and computes sigmoid only approximately, so a model ending in
either is served up to its logits and the client finishes it in plaintext, where only it sees it.
"""
import numpy as np

OUTPUT_ACTIVATIONS = (None, "softmax", "sigmoid")


def apply_output_activation(logits, name):
    """Softmax over the last axis, sigmoid elementwise, or the logits unchanged for None."""
    logits = np.asarray(logits, dtype=np.float64)
    if name is None:
        return logits
    if name == "softmax":
        exponentials = np.exp(logits - logits.max(axis=-1, keepdims=True))  # shifted: no overflow
        return exponentials / exponentials.sum(axis=-1, keepdims=True)
    if name == "sigmoid":
        return 0.5 * (1 + np.tanh(0.5 * logits))  # = 1 / (1 + exp(-x)), without overflow
    raise ValueError(f"unknown output activation {name!r}; expected one of {OUTPUT_ACTIVATIONS}")
