"""Where a private prediction's time goes, layer by layer: the README's breakdown table.

From the SecureNN graph serving runs (built here, no players needed; the randomness one party hands
another sent as seeds, as serving sends it), per layer: the messages between parties, their bytes,
and the rounds (the longest chain of messages, each waiting on the one before, that the layer
adds); the master seeds, one per pair of parties and step, are a row of their own. Timed in this
process, SecureNN with its three parties as devices of one process (no network, no HTTPS): each
layer's time is the difference between running the model up to it and up to the layer before. The
network's share shows beside it, in the end-to-end numbers of `make bench`.
"""
import statistics
import time
from collections import defaultdict

import numpy as np

from privatemodel.runtime.serving.server import _with_batch_size

PARTIES = ("server0", "server1", "server2")
STEP_ROW = "(each step)"
_TIMED_RUNS = 10


def layer_breakdown(model_path, batch_size: int = 1) -> list[dict]:
    """One row per layer: name, kind, messages, bytes, rounds, and in-process ms."""
    import tensorflow as tf

    keras_model = tf.keras.models.load_model(model_path, compile=False)
    config = _with_batch_size(keras_model.get_config(), batch_size)
    layers = [layer for layer in config["layers"] if layer["class_name"] != "InputLayer"]
    input_shape = [batch_size] + list(keras_model.input_shape[1:])
    traffic = _traffic_by_layer(config, keras_model.get_weights(), input_shape)
    timings = _milliseconds_by_layer(keras_model, config, batch_size)
    rows = [
        {"layer": layer["config"]["name"], "kind": layer["class_name"], **traffic[layer["config"]["name"]],
         "in_process_ms": timings[index]}
        for index, layer in enumerate(layers)
    ]
    if traffic[None]["messages"]:
        rows.append({"layer": STEP_ROW, "kind": "master seeds", **traffic[None], "in_process_ms": 0.0})
    return rows


def _traffic_by_layer(config, weights, input_shape):
    """Messages, bytes and rounds per layer, read off the graph with each party on its own task."""
    import tensorflow as tf

    from privatemodel.runtime.mpc import producer_seeds
    from privatemodel.runtime.mpc.tfe import tfe

    graph = tf.Graph()
    with graph.as_default():
        tfe.set_config(tfe.RemoteConfig({party: f"localhost:{port}" for port, party in enumerate(PARTIES, 1)}, job_name="tfe"))
        tfe.set_protocol(tfe.protocol.SecureNN())
        model = tfe.keras.models.model_from_config(config)
        model.set_weights(weights)
        built = len(graph.get_operations())
        x = tf.zeros(input_shape, tf.float64)
        model(tfe.define_private_input("server0", lambda: x))
    producer_seeds.send_all_as_seeds(graph, lambda party: tfe.get_config().get_player(party).device_name)
    names = {layer["config"]["name"] for layer in config["layers"]}
    rows = defaultdict(lambda: {"messages": 0, "bytes": 0, "rounds": 0})
    depth, sent, start_depth = {}, set(), {}
    deepest = 0
    for op in _topological(graph.get_operations()[built:]):  # the rewrite's ops came last
        layer = next((part for part in op.name.split("/")[1:2] if part in names), None)
        if layer:
            start_depth.setdefault(layer, deepest)
        d = 0
        for tensor in op.inputs:
            source = tensor.op
            crosses = source.type != "Const" and _task(source) != _task(op)
            d = max(d, depth.get(source.name, 0) + crosses)
            counted = layer or source.type == producer_seeds.SEED_OP  # a master seed, read outside the layers
            if crosses and counted and (tensor.name, _task(op)) not in sent:
                sent.add((tensor.name, _task(op)))  # TensorFlow sends a tensor once per receiving party
                rows[layer]["messages"] += 1
                rows[layer]["bytes"] += tensor.shape.num_elements() * tensor.dtype.size
        depth[op.name] = d
        deepest = max(deepest, d)
        if layer:
            rows[layer]["rounds"] = max(rows[layer]["rounds"], d - start_depth[layer])
    return rows


def _topological(ops):
    """These ops, each after every op it reads (depth first, without recursion)."""
    members, placed, order = set(ops), set(), []
    for root in ops:
        stack = [(root, False)]
        while stack:
            op, inputs_done = stack.pop()
            if op in placed:
                continue
            if inputs_done:
                placed.add(op)
                order.append(op)
                continue
            stack.append((op, True))
            stack += [(tensor.op, False) for tensor in op.inputs if tensor.op in members and tensor.op not in placed]
    return order


def _task(op) -> str:
    return op.device.split("task:")[1][:1] if "task:" in op.device else "controller"


def _milliseconds_by_layer(keras_model, config, batch_size):
    """Each layer's in-process time: model up to it, minus model up to the layer before."""
    import tensorflow as tf

    from privatemodel.runtime.mpc.tfe import tfe

    tfe.set_config(tfe.LocalConfig(list(PARTIES)))
    tfe.set_protocol(tfe.protocol.SecureNN())
    x = tf.constant(np.random.default_rng(0).uniform(0, 1, [batch_size] + list(keras_model.input_shape[1:])))
    inputs = [layer for layer in config["layers"] if layer["class_name"] == "InputLayer"]
    layers = [layer for layer in config["layers"] if layer["class_name"] != "InputLayer"]
    totals, weights_so_far = [0.0], []
    for count, layer in enumerate(layers, 1):
        weights_so_far += keras_model.get_layer(layer["config"]["name"]).get_weights()
        prefix = tfe.keras.models.model_from_config(dict(config, layers=inputs + layers[:count]))
        prefix.set_weights(weights_so_far)

        @tf.function
        def run(x, prefix=prefix):
            return prefix(tfe.define_private_input("server0", lambda: x)).reveal().to_native()

        run(x)
        runs = []
        for _ in range(_TIMED_RUNS):
            started = time.perf_counter()
            run(x)
            runs.append(1000 * (time.perf_counter() - started))
        totals.append(statistics.median(runs))
    return [max(after - before, 0.0) for before, after in zip(totals, totals[1:])]


def table(rows) -> str:
    lines = [f"{'layer':22} {'kind':20} {'messages':>8} {'bytes':>10} {'rounds':>6} {'in-process ms':>13}"]
    for row in rows:
        lines.append(f"{row['layer']:22} {row['kind']:20} {row['messages']:>8} {row['bytes']:>10} {row['rounds']:>6} {row['in_process_ms']:>13.1f}")
    total = {key: sum(row[key] for row in rows) for key in ("messages", "bytes", "rounds", "in_process_ms")}
    lines.append(f"{'total':43} {total['messages']:>8} {total['bytes']:>10} {total['rounds']:>6} {total['in_process_ms']:>13.1f}")
    return "\n".join(lines)
