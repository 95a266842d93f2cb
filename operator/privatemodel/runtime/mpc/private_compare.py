"""SecureNN's least-significant-bit protocol and its PrivateCompare (Wagh et al., Algorithms 3 and
5), as tf-encrypted 0.9.1 computes them, with the permutation the protocol requires and in small
integers. Every ReLU runs them, and they were nearly all of a prediction's time.

server2 draws a random mask r and hands server0 and server1 shares of r's bits; they open
c = x + r, and server2 learns whether r > c, XOR a bit beta it does not know. For that, each
server sends server2 one value per bit position, times a common random nonzero mask; a zero marks
the position where r and c first differ. tf-encrypted sent them in bit order (its "TODO permute"):
server2, which knows r, then learned where c first differs from r, which tells it about the
secret input x. Here server0 and server1 permute each row with a permutation server2 does not know,
as the protocol says, before sending.

The bits live modulo a small prime (107), so they cross the wire as uint8 where tf-encrypted used
int64 (an eighth of the bytes), and each holder's part is one kernel (secure_random.cc,
ComparisonTermsOp) instead of some twenty TensorFlow ops over [elements, 64] tensors.
"""
import tensorflow as tf

from privatemodel.runtime.mpc import secure_random

def lsb_private(prot, x):
    """Shares of the least significant bit of private x (in an odd ring): tf-encrypted's _lsb_private."""
    from tf_encrypted.protocol.pond import PondPrivateTensor, PondPublicTensor

    odd_dtype, out_dtype, prime_dtype = x.backing_dtype, prot.tensor_factory, prot.prime_factory
    assert odd_dtype.modulus % 2 == 1
    ops = secure_random.load()

    with tf.name_scope("lsb"):
        with tf.name_scope("blind"):
            with tf.device(prot.server_2.device_name):
                r0 = odd_dtype.sample_uniform(x.shape)
                r1 = odd_dtype.sample_uniform(x.shape)
                r_raw = (r0 + r1).value
                r_lsb = prot._share_and_wrap(out_dtype.tensor(tf.bitwise.bitwise_and(r_raw, 1)), False)
                # Shares of r's bits: server0's expands from a seed, server1 gets the difference.
                bits_seed = ops.secure_seed()
                r_bits_on_1 = ops.secure_nn_bit_shares(r_raw, bits_seed, prime=prime_dtype.modulus)
            with tf.device(prot.server_0.device_name):
                r0 = r0.identity()
                r_bits_on_0 = tf.bitcast(_uniform_int8(ops, tf.shape(r_bits_on_1), tf.identity(bits_seed), prime_dtype.modulus), tf.uint8)
            with tf.device(prot.server_1.device_name):
                r1 = r1.identity()
                r_bits_on_1 = tf.identity(r_bits_on_1)
            r = PondPrivateTensor(prot, r0, r1, False)
            c = prot.cast_backing((x + r).reveal(), out_dtype)
            c.is_scaled = False

        with tf.name_scope("compare"):
            with tf.device(prot.server_0.device_name):
                beta_on_0 = prime_dtype.sample_bits(x.shape)
            with tf.device(prot.server_1.device_name):
                beta_on_1 = beta_on_0.identity()
            beta = PondPublicTensor(prot, beta_on_0, beta_on_1, is_scaled=False)
            greater_xor_beta = _private_compare(prot, (r_bits_on_0, r_bits_on_1), c, beta, prime_dtype.modulus)

        with tf.name_scope("unblind"):
            gamma = prot.bitwise_xor(greater_xor_beta, prot.cast_backing(beta, out_dtype))
            delta = prot.bitwise_xor(r_lsb, _public_lsb(prot, c))
            return prot.bitwise_xor(gamma, delta)


def _private_compare(prot, r_bits, c, beta, prime):
    """Shares (in c's ring) of (r > c) XOR beta per element, r given as uint8 shares of its bits."""
    out_dtype = c.backing_dtype
    ops = secure_random.load()
    with tf.name_scope("private_compare"):
        # Common randomness of server0 and server1 from seeds server0 draws and hands to server1
        # (server2 never sees them): the nonzero multipliers, and each row's permutation.
        with tf.device(prot.server_0.device_name):
            seeds_on_0 = [ops.secure_seed(), ops.secure_seed()]
        with tf.device(prot.server_1.device_name):
            seeds_on_1 = [tf.identity(seed) for seed in seeds_on_0]
        sent = []
        for first, device, bits_share, c_on, beta_on, seeds in zip(
            (True, False),
            (prot.server_0.device_name, prot.server_1.device_name),
            r_bits,
            c.unwrapped,
            beta.unwrapped,
            (seeds_on_0, seeds_on_1),
        ):
            with tf.device(device):
                sent.append(ops.secure_nn_comparison_terms(bits_share, c_on.value, beta_on.value, seeds[0], seeds[1], prime=prime, first=first))
        with tf.device(prot.server_2.device_name):
            found = has_zero(sent[0], sent[1], prime)
            return prot._share_and_wrap(out_dtype.tensor(tf.cast(found, out_dtype.native_type)), False)


def has_zero(sent_0, sent_1, prime):
    """server2's part: reconstruct each row and look for its zero (a row holds at most one).
    Both terms are below prime, so their sum (below 2 * prime <= 256: no uint8 overflow) is zero
    modulo prime when it is 0 or prime."""
    total = sent_0 + sent_1
    return tf.reduce_any(tf.logical_or(tf.equal(total, 0), tf.equal(total, prime)), axis=-1)


def _public_lsb(prot, c):
    """The low bit of a public value, on each holder (tf-encrypted's lsb decomposes all 64 bits)."""
    from tf_encrypted.protocol.pond import PondPublicTensor

    on_holders = []
    for device, value in zip((prot.server_0.device_name, prot.server_1.device_name), c.unwrapped):
        with tf.device(device):
            on_holders.append(c.backing_dtype.tensor(tf.bitwise.bitwise_and(value.value, 1)))
    return PondPublicTensor(prot, *on_holders, is_scaled=False)


def _uniform_int8(ops, shape, seed, maxval):
    """What secure_nn_bit_shares subtracts on server2: the same seed gives the same values."""
    return ops.secure_seeded_random_uniform(shape, seed, tf.constant(0, tf.int8), tf.constant(maxval, tf.int8))
