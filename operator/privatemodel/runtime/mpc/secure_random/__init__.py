"""The project's cryptographically secure random TensorFlow op (secure_random.cc).

tf-encrypted ships this op only for TF 2.9.1 and otherwise falls back to insecure
randomness; the project never does: without this library nothing private runs.
"""

import functools
from pathlib import Path

LIBRARY_PATH = Path(__file__).with_name("_secure_random_ops.so")
_HOW_TO_FIX = "build it with `make install` (or `python -m privatemodel.runtime.mpc.secure_random.build`)"


def load(path: Path = LIBRARY_PATH):
    """Return the op module (tf.load_op_library), loaded once per path.

    Raises RuntimeError naming the library and the fix when it is missing or does not load.
    """
    return _load_resolved(Path(path).resolve())


@functools.cache
def _load_resolved(path: Path):
    if not path.exists():
        raise RuntimeError(f"secure random op library {path} is missing: {_HOW_TO_FIX}")
    import tensorflow as tf

    try:
        ops = tf.load_op_library(str(path))
    except Exception as error:  # TF raises NotFoundError for undefined symbols, others for bad files.
        raise RuntimeError(
            f"secure random op library {path} does not load ({error}); it may have been built "
            f"for another TensorFlow version: {_HOW_TO_FIX}"
        ) from error
    set_ordered_in_functions(UNORDERED_OPS, False)
    return ops


# Stateful, so that TensorFlow never merges two draws into one or folds one into a constant, but
# with no order among them.
UNORDERED_OPS = ("SecureSeed", "SecureRandomUniform")


def set_ordered_in_functions(op_types, ordered: bool) -> None:
    """tf.function chains every stateful op it traces in creation order (automatic control
    dependencies), whatever device each runs on: in a SecureNN step, the seeds of all three players
    made one chain, and each link between two players was a message waited for. TensorFlow's own
    random ops are exempt; loading the library exempts these too (ordered=False). The baseline
    bench puts tf-encrypted's order back (ordered=True)."""
    from tensorflow.python.framework import auto_control_deps

    exempt = frozenset(op_types)
    current = auto_control_deps.LEGACY_RANDOM_OPS
    auto_control_deps.LEGACY_RANDOM_OPS = current - exempt if ordered else current | exempt
