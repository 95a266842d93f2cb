"""Randomness one party hands another travels as one seed per step, not tensor by tensor.

In SecureNN, server2 (the crypto producer) draws the masks and the random halves of its triples,
and tf-encrypted sends each one to the holder that needs it, expanded, as a message of its own:
about a third of a step's messages. server0 likewise hands server1 their common randomness (the
bits beta and the permutation seeds of each ReLU). Each is a pure function of a fresh seed
(SecureSeededRandomUniform of SecureSeed), so once a step's graph is built, `send_as_seeds`
rewrites every one that one party draws and exactly one other party reads: both expand it from a
seed derived from one master seed for that pair, drawn fresh each step, which is all that is sent.
Values and their distribution are as before, and the receiver learns from its master exactly what
it received before: nothing a third party gets.

The master is created after the rest of the step: it relies on secure_random's ops being left
unordered in a tf.function (secure_random.UNORDERED_OPS), or it would be chained after the step's
last stateful op, which reads what it seeds: a cycle.
"""
import tensorflow as tf

from privatemodel.runtime.mpc import secure_random

SEED_OP = "SecureSeed"
EXPAND_OP = "SecureSeededRandomUniform"
# Who draws randomness that whom reads, in SecureNN: each pair gets its own master seed.
ROUTES = (("server2", ("server0", "server1")), ("server0", ("server1",)))
_SEED_WORDS = 8
_INT32_RANGE = (-(2**31), 2**31 - 1)
_ARGUMENTS = (0, 2, 3)  # of SecureSeededRandomUniform: shape, minval, maxval (1 is the seed)


def send_all_as_seeds(graph, device_name) -> dict[tuple[str, str], int]:
    """Every route of ROUTES, parties named by device_name(party); items moved per (from, to)."""
    moved = {}
    for producer, receivers in ROUTES:
        counts = send_as_seeds(graph, device_name(producer), [device_name(receiver) for receiver in receivers])
        moved.update({(producer, receiver): counts[_canonical(device_name(receiver))] for receiver in receivers})
    return moved


def send_as_seeds(graph, producer: str, receivers) -> dict[str, int]:
    """Rewrite `graph` in place (devices by name); per receiver, how many tensors and seeds now come from its master."""
    producer = _canonical(producer)
    plan = {_canonical(receiver): [] for receiver in receivers}
    for op in graph.get_operations():
        if _canonical(op.device) != producer:
            continue
        if op.type == SEED_OP:
            item = ("seed", op, op.outputs)
        elif op.type == EXPAND_OP and _fresh_seed(op, producer) and _static_arguments(op):
            item = ("tensor", op, _with_identities(op.outputs[0], producer))
        else:
            continue
        remote = {_canonical(consumer.device) for tensor in item[2] for consumer in tensor.consumers()} - {producer}
        if len(remote) == 1 and (receiver := remote.pop()) in plan:
            plan[receiver].append(item)
    ops = secure_random.load()
    with graph.as_default():
        for receiver, items in plan.items():
            if items:
                _rewire(ops, producer, receiver, items)
    return {receiver: len(items) for receiver, items in plan.items()}


def _rewire(ops, producer, receiver, items):
    with tf.device(producer):
        master = ops.secure_seed()
        on_producer = tf.unstack(_derived_seeds(ops, master, len(items)))
    with tf.device(receiver):
        on_receiver = tf.unstack(_derived_seeds(ops, master, len(items)))
    for (kind, op, outputs), producer_seed, receiver_seed in zip(items, on_producer, on_receiver):
        if kind == "seed":
            _redirect(outputs, {producer: producer_seed, receiver: receiver_seed})
            continue
        op._update_input(1, producer_seed)
        with tf.device(receiver):
            static = [tf.constant(tf.get_static_value(op.inputs[index]), op.inputs[index].dtype) for index in _ARGUMENTS]
            again = ops.secure_seeded_random_uniform(static[0], receiver_seed, static[1], static[2])
        _redirect(outputs, {receiver: again})


def _derived_seeds(ops, master, count):
    """[count, 8] int32 seeds from the master's stream: the same on every device that expands it."""
    low, high = _INT32_RANGE
    return ops.secure_seeded_random_uniform(tf.constant([count, _SEED_WORDS]), master, tf.constant(low), tf.constant(high))


def _redirect(outputs, by_device):
    """Point every consumer of these tensors on a device in by_device at that device's tensor."""
    for tensor in outputs:
        for consumer in tensor.consumers():
            replacement = by_device.get(_canonical(consumer.device))
            if replacement is None:
                continue
            for index, source in enumerate(consumer.inputs):
                if source.name == tensor.name:
                    consumer._update_input(index, replacement)


def _fresh_seed(expand, producer) -> bool:
    """Its seed is a SecureSeed on the producer that nothing else reads."""
    seed = expand.inputs[1].op
    return seed.type == SEED_OP and _canonical(seed.device) == producer and len(seed.outputs[0].consumers()) == 1


def _static_arguments(expand) -> bool:
    """Its shape and bounds are known when the graph is built, so the receiver can make the same op."""
    return all(tf.get_static_value(expand.inputs[index]) is not None for index in _ARGUMENTS)


def _with_identities(tensor, producer):
    """The tensor and its copies (Identity ops) on the producer: consumers elsewhere may read any."""
    found, pending = [], [tensor]
    while pending:
        current = pending.pop()
        found.append(current)
        pending += [consumer.outputs[0] for consumer in current.consumers()
                    if consumer.type == "Identity" and _canonical(consumer.device) == producer]
    return found


def _canonical(device: str) -> str:
    return tf.DeviceSpec.from_string(device).to_string() if device else ""
