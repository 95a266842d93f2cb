"""The bench's accuracy comparison reads back the logits the client's activation came from."""
import numpy as np
import pytest

from privatemodel.bench.accuracy import logits_of
from privatemodel.runtime.client.postprocess import apply_output_activation


@pytest.mark.parametrize("activation", [None, "softmax", "sigmoid"])
def test_logits_are_recovered_from_the_client_output(activation):
    logits = np.random.default_rng(0).normal(0, 8, (5, 10))
    recovered = logits_of(apply_output_activation(logits, activation), activation)
    if activation == "softmax":  # softmax forgets a shift per row
        logits = logits - logits.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(recovered, logits, atol=1e-6)
