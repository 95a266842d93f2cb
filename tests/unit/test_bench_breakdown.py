"""The bench's per-layer breakdown, on a model built here: every layer, in order, with what it costs."""
import pytest
import tensorflow as tf

from privatemodel.bench import breakdown

pytestmark = pytest.mark.engine  # SecureNN in this process, a model per layer: some 20 s


def test_each_layer_gets_its_messages_bytes_and_rounds(tmp_path):
    model = tf.keras.Sequential([
        tf.keras.layers.Dense(6, input_shape=(4,), name="hidden"),
        tf.keras.layers.ReLU(name="relu"),
        tf.keras.layers.Flatten(name="flat"),
        tf.keras.layers.Dense(3, name="out"),
    ])
    path = tmp_path / "small.h5"
    model.save(path)

    rows = breakdown.layer_breakdown(path, batch_size=2)

    assert [(row["layer"], row["kind"]) for row in rows] == [
        ("hidden", "Dense"), ("relu", "ReLU"), ("flat", "Flatten"), ("out", "Dense"), (breakdown.STEP_ROW, "master seeds")]
    # One master seed a step per pair (server2 to each holder, server0 to server1), not a message per random tensor.
    assert (rows[-1]["messages"], rows[-1]["bytes"]) == (3, 3 * 32)
    by_layer = {row["layer"]: row for row in rows}
    # A private-by-private product opens masked values: one round; SecureNN's ReLU takes several.
    assert by_layer["hidden"]["rounds"] >= 1 and by_layer["relu"]["rounds"] > by_layer["hidden"]["rounds"]
    assert by_layer["relu"]["messages"] > 0 and by_layer["relu"]["bytes"] > 0
    assert by_layer["flat"]["messages"] == by_layer["flat"]["bytes"] == by_layer["flat"]["rounds"] == 0
    assert all(row["in_process_ms"] >= 0 for row in rows)
    assert "total" in breakdown.table(rows).splitlines()[-1]
