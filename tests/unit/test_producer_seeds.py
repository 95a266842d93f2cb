"""What crosses from server2 to each holder in a step (runtime/mpc/producer_seeds.py), and the seeds'
order in a tf.function.

Read off SecureNN graphs built as serving builds them, with each party on its own task; no player
runs here. That answers stay equal to Keras's with the rewrite runs on real players
(tests/integration/test_private_inference.py, the fault and batching suites).
"""
import numpy as np
import pytest
import tensorflow as tf

from privatemodel.runtime.mpc import producer_seeds, secure_random
from privatemodel.runtime.mpc.tfe import tfe
from privatemodel.runtime.serving.server import _with_batch_size

PARTIES = ("server0", "server1", "server2")
DEVICE = {party: f"/job:tfe/replica:0/task:{index}/device:CPU:0" for index, party in enumerate(PARTIES)}
RANDOM_OPS = (producer_seeds.SEED_OP, producer_seeds.EXPAND_OP)


def party(op) -> str:
    device = tf.DeviceSpec.from_string(op.device).to_string() if op.device else ""
    return next((name for name, spec in DEVICE.items() if spec == device), "controller")


def origin(tensor):
    while tensor.op.type == "Identity" and party(tensor.op.inputs[0].op) == party(tensor.op):
        tensor = tensor.op.inputs[0]
    return tensor.op


def sent(graph, source, destination) -> dict:
    """Tensor name -> the op type it comes from (through copies), for each tensor `source` sends
    `destination` (TensorFlow sends a tensor once per receiving device)."""
    return {tensor.name: origin(tensor).type for op in graph.get_operations() if party(op) == destination
            for tensor in op.inputs if party(tensor.op) == source and tensor.op.type != "Const"}


def securenn_step_graph(keras_model, batch):
    """The model's SecureNN forward pass on a private input, as a graph over three tasks."""
    weights = keras_model.get_weights()
    graph = tf.Graph()
    with graph.as_default():
        tfe.set_config(tfe.RemoteConfig({name: f"localhost:{port}" for port, name in enumerate(PARTIES, 1)}, job_name="tfe"))
        tfe.set_protocol(tfe.protocol.SecureNN())
        model = tfe.keras.models.model_from_config(_with_batch_size(keras_model.get_config(), batch))
        model.set_weights(weights)
        x = tf.zeros([batch] + list(keras_model.input_shape[1:]), tf.float64)
        model(tfe.define_private_input("server0", lambda: x))
    return graph


@pytest.fixture(scope="module")
def small_cnn():
    """Not the reference CNN: a strided conv with bias, a dense ReLU, two outputs."""
    keras = tf.keras
    model = keras.Sequential([
        keras.layers.Conv2D(3, 3, strides=2, activation="relu", input_shape=(9, 9, 2)),
        keras.layers.Flatten(),
        keras.layers.Dense(5, activation="relu"),
        keras.layers.Dense(2),
    ])
    model.set_weights([np.random.default_rng(index).normal(size=w.shape) for index, w in enumerate(model.get_weights())])
    return model


def test_server2_sends_each_holder_one_seed_instead_of_its_random_tensors(small_cnn):
    graph = securenn_step_graph(small_cnn, batch=3)
    before = {holder: sent(graph, "server2", holder) for holder in ("server0", "server1")}
    assert all(sum(kind in RANDOM_OPS for kind in names.values()) >= 5 for names in before.values()), before

    moved = producer_seeds.send_as_seeds(graph, DEVICE["server2"], [DEVICE["server0"], DEVICE["server1"]])

    for holder in ("server0", "server1"):
        after = sent(graph, "server2", holder)
        random_before = sum(kind in RANDOM_OPS for kind in before[holder].values())
        assert [kind for kind in after.values() if kind in RANDOM_OPS] == [producer_seeds.SEED_OP]  # the master
        assert moved[DEVICE[holder]] == random_before
        assert len(after) == len(before[holder]) - random_before + 1
        # What server2 computes and sends otherwise (the other halves of its triples) still crosses.
        assert {name: kind for name, kind in before[holder].items() if kind not in RANDOM_OPS}.items() <= after.items()


def test_server0_sends_server1_one_seed_for_their_common_randomness(small_cnn):
    graph = securenn_step_graph(small_cnn, batch=2)
    random_before = [kind for kind in sent(graph, "server0", "server1").values() if kind in RANDOM_OPS]
    assert len(random_before) >= 3  # per ReLU: the bits beta, and the permutation and mask seeds

    moved = producer_seeds.send_all_as_seeds(graph, DEVICE.get)

    assert [kind for kind in sent(graph, "server0", "server1").values() if kind in RANDOM_OPS] == [producer_seeds.SEED_OP]
    assert moved[("server0", "server1")] == len(random_before)
    assert not [kind for kind in sent(graph, "server0", "server2").values() if kind in RANDOM_OPS]  # server2 never gets them


def test_every_seed_reaches_one_other_party_at_most(small_cnn):
    graph = securenn_step_graph(small_cnn, batch=2)
    producer_seeds.send_all_as_seeds(graph, DEVICE.get)
    for op in graph.get_operations():
        if op.type == producer_seeds.SEED_OP:
            readers = {party(consumer) for consumer in op.outputs[0].consumers()} - {party(op)}
            assert len(readers) <= 1, f"{op.name} on {party(op)} is read by {readers}"


def test_the_same_values_on_both_sides_of_a_derived_seed():
    """The holder's copy of a tensor is the producer's: both expand the same derived seed."""
    ops = secure_random.load()
    graph = tf.Graph()
    with graph.as_default():
        with tf.device("/cpu:0"):
            drawn = ops.secure_seeded_random_uniform(tf.constant([6]), ops.secure_seed(), tf.constant(0, tf.int64), tf.constant(1000, tf.int64))
            read_here = drawn + 0
            read_there = tf.identity(drawn) + 0
    # One process has one device: relabel the reader as another task, rewrite, then run all on the CPU.
    read_there.op._set_device(DEVICE["server0"])
    producer_seeds.send_as_seeds(graph, "/cpu:0", [DEVICE["server0"]])
    for op in graph.get_operations():
        if op.device == DEVICE["server0"] or op.device == tf.DeviceSpec.from_string(DEVICE["server0"]).to_string():
            op._set_device("/cpu:0")
    with tf.compat.v1.Session(graph=graph) as session:
        here, there = session.run([read_here, read_there])
    np.testing.assert_array_equal(here, there)
    assert read_there.op.inputs[0].op.type == producer_seeds.EXPAND_OP  # it was rewired to expand its own copy


def test_seeds_on_different_players_are_not_chained_in_a_tf_function():
    ops = secure_random.load()

    @tf.function
    def seeds():
        drawn = []
        for name in ("server0", "server2", "server1", "server2", "server0"):
            with tf.device(DEVICE[name]):
                drawn.append(ops.secure_seed())
        return drawn

    graph = seeds.get_concrete_function().graph
    seed_ops = [op for op in graph.get_operations() if op.type == producer_seeds.SEED_OP]
    assert len(seed_ops) == 5
    assert [op.control_inputs for op in seed_ops] == [[]] * 5
