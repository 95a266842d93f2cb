"""SecureNN's ReLU (private_compare.py): right answers, and nothing positional for server2.

server2 knows its mask r; in every comparison it sees one row of values per element, with a zero
where the blinded input first differs from r. Unpermuted (tf-encrypted 0.9.1), where that zero
sits tells server2 about the input; permuted, it must be uniform whatever the input.
Everything runs in this process (tfe.LocalConfig), eagerly, so server2's view can be recorded.
"""
import hashlib

import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

from privatemodel.runtime.mpc import private_compare, secure_random, tfe_fixes
from privatemodel.runtime.mpc.tfe import tfe
from tf_encrypted.protocol.securenn import securenn

BITS = 64
# Uniformity is rejected only below this p-value: a false alarm about once in a million runs.
SIGNIFICANCE = 1e-6
FIXED_SEED = [12345678, 1, 2, 3, 4, 5, 6, 7]


def private_relu(protocol, x):
    return protocol.relu(tfe.define_private_variable(x)).reveal().to_native().numpy()


def zero_positions(rows: np.ndarray) -> np.ndarray:
    """Where server2 finds the zero, in the rows that hold one."""
    found = rows == 0
    return np.argmax(found[found.any(axis=-1)], axis=-1)


def positions_p_value(positions) -> float:
    return scipy.stats.chisquare(np.bincount(positions, minlength=BITS)).pvalue


def test_relu_matches_plaintext_across_signs_and_magnitudes(protocol):
    unit = 1 / protocol.fixedpoint_config.scaling_factor
    x = np.concatenate([
        np.random.default_rng(0).uniform(-100, 100, size=500),
        [0.0, unit, -unit, 2 * unit, -2 * unit, 0.5, -0.5, 1000.0, -1000.0],
    ])
    # Within two units in the last place: inputs are encoded, and a share may wrap (see tf-encrypted's cast_backing).
    np.testing.assert_allclose(private_relu(protocol, x), np.maximum(x, 0), rtol=0, atol=2 * unit)


def test_server2_sees_the_zero_at_a_uniformly_random_position(protocol, monkeypatch):
    seen = []
    has_zero = private_compare.has_zero

    def record(sent_0, sent_1, prime):
        seen.append(((sent_0.numpy().astype(np.int32) + sent_1.numpy()) % prime))
        return has_zero(sent_0, sent_1, prime)

    monkeypatch.setattr(private_compare, "has_zero", record)
    # One input value, repeated: without the permutation its zeros gather around one position.
    private_relu(protocol, np.full(4096, 0.75))

    (rows,) = seen
    positions = zero_positions(rows)
    assert len(positions) > 1000  # about half the rows hold a zero (beta decides)
    assert positions_p_value(positions) > SIGNIFICANCE


def test_tf_encrypteds_original_showed_server2_where_the_input_differs(protocol, monkeypatch):
    """The breakage the fix removes: the same input through tf-encrypted's own protocol."""
    monkeypatch.setattr(securenn, "_lsb_private", tfe_fixes.ORIGINALS[(securenn, "_lsb_private")])
    seen = []
    reconstruct = protocol._reconstruct

    def record(share0, share1):
        value = reconstruct(share0, share1)
        if share0.shape[-1] == BITS and share0.factory is protocol.prime_factory:  # the masked rows
            seen.append(value.value.numpy())
        return value

    monkeypatch.setattr(protocol, "_reconstruct", record)
    private_relu(protocol, np.full(4096, 0.75))

    (rows,) = seen
    positions = zero_positions(rows)
    assert positions_p_value(positions) < SIGNIFICANCE
    # Nearly every zero sits a few bits above the input's top bit (2 * 0.75 is about 2**16.6 in
    # fixed point): server2 reads the input's magnitude off the positions.
    assert np.mean((positions >= 10) & (positions < 30)) > 0.99


def comparison_terms(bits, c, beta, prime=107):
    seed = tf.constant(FIXED_SEED)
    return secure_random.load().secure_nn_comparison_terms(bits, c, beta, seed, seed, prime=prime, first=True)


def test_the_kernel_refuses_rows_that_do_not_match_with_a_clear_error():
    bits = tf.zeros([3, BITS], tf.uint8)
    with pytest.raises(tf.errors.InvalidArgumentError, match="one value per row of bits: 3 rows, got 2 and 3"):
        comparison_terms(bits, tf.zeros([2], tf.int64), tf.zeros([3], tf.int64))
    with pytest.raises(tf.errors.InvalidArgumentError, match="1 to 64 positions"):
        comparison_terms(tf.zeros([3, 65], tf.uint8), tf.zeros([3], tf.int64), tf.zeros([3], tf.int64))


def test_nonzero_terms_are_uniform_so_server2_learns_nothing_from_them():
    """What server2 reconstructs besides the zero: c_i times a uniform nonzero mask, uniform on 1..p-1."""
    prime = 107
    r = np.random.default_rng(1).integers(0, 2**62, size=2000, dtype=np.int64)
    bits = ((r[:, None] >> np.arange(BITS)) & 1).astype(np.uint8)
    rows = secure_random.load().secure_nn_comparison_terms(
        bits, r - 1, tf.zeros([2000], tf.int64), tf.constant(FIXED_SEED), tf.constant(FIXED_SEED[::-1]),
        prime=prime, first=True).numpy()
    nonzero = rows[rows != 0].astype(np.int64)
    assert scipy.stats.chisquare(np.bincount(nonzero, minlength=prime)[1:]).pvalue > SIGNIFICANCE


def test_each_row_holds_one_zero_where_the_bits_first_differ_and_is_permuted():
    """With the whole of r's bits in one share: c = r gives no zero (not r > c), c = r - 1 one."""
    r = np.array([5, 2**40 + 3, 12345], dtype=np.int64)
    bits = ((r[:, None] >> np.arange(BITS)) & 1).astype(np.uint8)
    zeros = tf.zeros([3], tf.int64)
    assert (comparison_terms(bits, r, zeros).numpy() != 0).all()
    rows = comparison_terms(bits, r - 1, zeros).numpy()
    assert ((rows == 0).sum(axis=-1) == 1).all()


def test_bit_shares_add_up_to_the_bits_with_the_seeded_other_half():
    prime, ops = 107, secure_random.load()
    r = np.array([0, 1, -1, 2**63 - 1, -(2**63), 123456789], dtype=np.int64)
    seed = tf.constant(FIXED_SEED)
    mine = ops.secure_nn_bit_shares(r, seed, prime=prime).numpy().astype(np.int64)
    other = ops.secure_seeded_random_uniform([len(r), BITS], seed, tf.constant(0, tf.int8), tf.constant(prime, tf.int8)).numpy()
    bits = (r.view(np.uint64)[:, None] >> np.arange(BITS, dtype=np.uint64)) & np.uint64(1)
    assert ((mine + other) % prime == bits).all()
    assert mine.max() < prime


def test_the_seeded_streams_are_the_same_in_every_build():
    """server0 expands, from a seed, the values server2 drew from it (the other half of r's bits,
    the common masks and permutations): players built from different commits, as during a rollout,
    must expand a seed alike or their answers are silently wrong. Known answers, from the first
    build of these kernels (a faster kernel must draw the same streams)."""
    ops, seed = secure_random.load(), tf.constant(FIXED_SEED)
    r = np.arange(-50, 50, dtype=np.int64) * 7919 * 2**40
    bits = ((r[:, None] >> np.arange(BITS)) & 1).astype(np.uint8)

    def digest(tensor):
        return hashlib.sha256(tensor.numpy().tobytes()).hexdigest()[:16]

    assert digest(ops.secure_seeded_random_uniform(
        [100, BITS], seed, tf.constant(0, tf.int8), tf.constant(107, tf.int8))) == "58cfac0c8d61326a"
    assert digest(ops.secure_seeded_random_uniform(
        [1000], seed, tf.constant(-10**12, tf.int64), tf.constant(10**12 + 1, tf.int64))) == "090c80e21734095f"
    assert digest(ops.secure_nn_bit_shares(r, seed, prime=107)) == "6a9efa4e3744ef9a"
    assert digest(ops.secure_nn_comparison_terms(
        bits, r - 1, r & 1, seed, tf.constant(FIXED_SEED[::-1]), prime=107, first=True)) == "8d6ec5599bb406a6"


def test_bit_shares_out_of_range_from_a_dishonest_server2_give_terms_in_range():
    """server1's bit shares come from server2 over the wire: any byte must give terms modulo p
    (the kernel looks products up in a p x p table)."""
    prime = 107
    for value in (prime, 200, 255):
        bits = tf.fill([4, BITS], tf.constant(value, tf.uint8))
        c = tf.constant([0, 1, -1, 2**40], tf.int64)
        for beta in (tf.zeros([4], tf.int64), tf.ones([4], tf.int64)):
            rows = comparison_terms(bits, c, beta, prime).numpy()
            assert rows.max() < prime
