"""The project's secure random op, exercised through tf-encrypted's own wrappers."""
import numpy as np
import pytest
import scipy.stats
import tensorflow as tf

import privatemodel.runtime.mpc.tfe  # noqa: F401  (installs the op into tf-encrypted)
from privatemodel.runtime.mpc import secure_random
from tf_encrypted.operations import secure_random as tfe_random

SAMPLES = 100_000
BINS = 64
# Uniformity is rejected only below this p-value: a false alarm about once in a million runs.
SIGNIFICANCE = 1e-6
FIXED_SEED = [87654321, 1, 2, 3, 4, 5, 6, 7]

INT32, INT64 = np.iinfo(np.int32), np.iinfo(np.int64)
RANGES = [
    pytest.param(tf.int32, 0, 7, id="int32-small-odd"),
    pytest.param(tf.int32, -1000, 1129, id="int32-not-power-of-two"),
    pytest.param(tf.int32, INT32.min, INT32.max, id="int32-full"),
    # 3 * 2**30 values: plain `word % range` would make the lowest third twice as likely.
    pytest.param(tf.int32, INT32.min, 2**30, id="int32-modulo-bias-trap"),
    pytest.param(tf.int64, 0, 7, id="int64-small-odd"),
    pytest.param(tf.int64, -(10**12), 10**12 + 1, id="int64-not-power-of-two"),
    pytest.param(tf.int64, INT64.min, INT64.max, id="int64-full"),
    pytest.param(tf.int64, INT64.min, 2**62, id="int64-modulo-bias-trap"),
]


def uniformity_p_value(values: np.ndarray, minval: int, maxval: int) -> float:
    """Chi-square test of values against the uniform distribution on [minval, maxval)."""
    span = maxval - minval
    width = -(-span // min(span, BINS))
    bins = -(-span // width)  # the last bin may be narrower
    # Offsets from minval in 64-bit unsigned arithmetic, exact even for full-range bounds.
    offsets = values.astype(np.uint64) - np.uint64(minval % 2**64)
    observed = np.bincount((offsets // np.uint64(width)).astype(np.int64), minlength=bins)
    edges = [min(i * width, span) for i in range(bins + 1)]
    expected = np.diff(np.array(edges, dtype=float)) / span * len(values)
    return scipy.stats.chisquare(observed, expected).pvalue


def seeded(shape, minval, maxval, dtype=tf.int32, seed=FIXED_SEED):
    return tfe_random.seeded_random_uniform(shape, minval=minval, maxval=maxval, dtype=dtype, seed=seed).numpy()


def fresh(shape, minval, maxval, dtype=tf.int32):
    return tfe_random.random_uniform(shape, minval=minval, maxval=maxval, dtype=dtype).numpy()


def test_tf_encrypted_reports_secure_randomness():
    assert tfe_random.supports_secure_randomness()
    assert tfe_random.supports_seeded_randomness()
    assert tfe_random.secure_random.secure_random_module is secure_random.load()


def test_missing_library_is_a_clear_error(tmp_path):
    missing = tmp_path / "missing.so"
    with pytest.raises(RuntimeError, match=f"{missing}.*missing.*make install"):
        secure_random.load(path=missing)


def test_unloadable_library_is_a_clear_error(tmp_path):
    broken = tmp_path / "broken.so"
    broken.write_bytes(b"not a shared library")
    with pytest.raises(RuntimeError, match=f"{broken}.*does not load.*make install"):
        secure_random.load(path=broken)


@pytest.mark.parametrize("sample", [seeded, fresh], ids=["seeded", "fresh"])
@pytest.mark.parametrize("dtype, minval, maxval", RANGES)
def test_values_are_in_range_and_uniform(sample, dtype, minval, maxval):
    values = sample([SAMPLES], minval, maxval, dtype)
    assert values.dtype == dtype.as_numpy_dtype
    assert values.min() >= minval and values.max() < maxval
    assert uniformity_p_value(values, minval, maxval) > SIGNIFICANCE


@pytest.mark.parametrize("sample", [seeded, fresh], ids=["seeded", "fresh"])
@pytest.mark.parametrize("dtype", [tf.int8, tf.int16])
def test_narrow_dtypes_are_in_range_and_uniform(sample, dtype):
    info = np.iinfo(dtype.as_numpy_dtype)
    values = sample([SAMPLES], info.min, info.max, dtype)
    assert values.dtype == dtype.as_numpy_dtype
    assert values.min() >= info.min and values.max() < info.max
    assert uniformity_p_value(values, info.min, info.max) > SIGNIFICANCE


def test_same_seed_gives_the_same_stream():
    first = seeded([2000], 0, 1129)
    assert np.array_equal(first, seeded([2000], 0, 1129))
    # A stream, not a per-shape value: a shorter draw is a prefix of a longer one.
    assert np.array_equal(first[:500], seeded([500], 0, 1129))
    seed = tfe_random.secure_seed()
    assert np.array_equal(seeded([3, 4], -5, 5, seed=seed), seeded([3, 4], -5, 5, seed=seed))


def test_different_seeds_give_different_streams():
    other_seed = FIXED_SEED[:-1] + [FIXED_SEED[-1] + 1]
    assert not np.array_equal(seeded([64], INT32.min, INT32.max), seeded([64], INT32.min, INT32.max, seed=other_seed))


def test_fresh_seeds_differ():
    first, second = tfe_random.secure_seed(), tfe_random.secure_seed()
    # tf-encrypted expects a seed to be int32[8]: one 256-bit ChaCha20 key.
    assert first.shape == (8,) and first.dtype == tf.int32
    assert not np.array_equal(first.numpy(), second.numpy())


def test_fresh_draws_differ_also_inside_a_graph():
    assert not np.array_equal(fresh([64], INT32.min, INT32.max), fresh([64], INT32.min, INT32.max))
    # Stateful ops: TensorFlow must neither constant-fold nor merge them.
    draw_twice = tf.function(lambda: (tfe_random.random_uniform([64], maxval=INT32.max), tfe_random.secure_seed()))
    (values_a, seed_a), (values_b, seed_b) = draw_twice(), draw_twice()
    assert not np.array_equal(values_a.numpy(), values_b.numpy())
    assert not np.array_equal(seed_a.numpy(), seed_b.numpy())


def test_static_shape_is_inferred():
    shapes = tf.function(lambda: (tfe_random.seeded_random_uniform([2, 5], maxval=3, seed=tfe_random.secure_seed()), tfe_random.secure_seed()))
    values, seed = shapes.get_concrete_function().structured_outputs
    assert values.shape == (2, 5) and seed.shape == (8,)


@pytest.mark.parametrize("sample", [seeded, fresh], ids=["seeded", "fresh"])
def test_empty_range_is_a_clear_error(sample):
    with pytest.raises(tf.errors.InvalidArgumentError, match="need minval < maxval, got minval=5 maxval=5"):
        sample([4], 5, 5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="need minval < maxval, got minval=6 maxval=5"):
        sample([4], 6, 5, tf.int8)


def test_seed_of_wrong_shape_is_a_clear_error():
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"seed must be an int32 vector of shape \[8\], got shape \[1\]"):
        seeded([4], 0, 10, seed=[1])
