"""Fixes tf-encrypted 0.9.1 needs on TensorFlow 2.12, applied by privatemodel.runtime.mpc.tfe.

Each fix replaces one tf-encrypted function with a correct (or, for the masked products and
the convolutions, a cheaper) equivalent. The function it replaced is kept in ORIGINALS, so
tests can show the breakage each fix removes (and a fix can delegate to it).

tf-encrypted is imported inside the functions only: project code must reach it through
privatemodel.runtime.mpc.tfe, which installs the secure random op first.
"""

import math
import sys

import numpy as np
import tensorflow as tf

# (module, attribute name) -> the tf-encrypted function a fix replaced
ORIGINALS = {}


def _replace(module, name: str, replacement) -> None:
    """Point module.name at replacement; repeating it is harmless."""
    current = getattr(module, name)
    if current is not replacement:
        ORIGINALS.setdefault((module, name), current)
        setattr(module, name, replacement)


def _avgpool2d_reshape_reduce(x, pool_size, *unused_strides_and_padding):
    """Sum each non-overlapping pool_size window of an NCHW tensor (shares or public values)."""
    pool_height, pool_width = (int(size) for size in pool_size)
    _, channels, height, width = x.shape
    windows = x.reshape(
        [-1, channels, height // pool_height, pool_height, width // pool_width, pool_width]
    )
    return windows.reduce_sum(axis=5).reduce_sum(axis=3)


def fix_avgpool2d_reshape_reduce() -> None:
    """Average pooling whose pool size equals its strides and divides the input evenly
    (e.g. a 2x2 pool over 26x26) raised AttributeError: module 'tensorflow' has no
    attribute 'Dimension' (TF1 only) in pond._avgpool2d_reshape_reduce."""
    from tf_encrypted.protocol.pond import pond

    _replace(pond, "_avgpool2d_reshape_reduce", _avgpool2d_reshape_reduce)


def _same_padding(size: int, window: int, stride: int) -> tuple[int, int, int]:
    """TensorFlow's SAME along one axis: (outputs, padding before, padding after); the padding is
    split evenly, any odd cell going after."""
    outputs = math.ceil(size / stride)
    padding = max((outputs - 1) * stride + window - size, 0)
    return outputs, padding // 2, padding - padding // 2


def _cells_per_window(size: int, pool: int, stride: int, padding: str) -> np.ndarray:
    """Along one axis, how many real (not padded) input cells each pooling window covers."""
    if padding != "SAME":  # VALID, read as pond._avgpool2d_im2col_reduce does
        return np.full(math.ceil((size - pool + 1) / stride), pool)
    outputs, padding_before, _ = _same_padding(size, pool, stride)
    starts = np.arange(outputs) * stride - padding_before
    return np.minimum(starts + pool, size) - np.maximum(starts, 0)


def _avgpool2d_core(prot, x, pool_size, strides, padding):
    """Window sums on each share holder, and what to multiply them by to get averages."""
    from tf_encrypted.protocol.pond import pond

    x_on_0, x_on_1 = x.unwrapped
    _, _, height, width = (int(dim) for dim in x.shape)
    tiles_evenly = (
        tuple(pool_size) == tuple(strides)
        and pool_size[0] == pool_size[1]
        and height % pool_size[0] == 0
        and width % pool_size[1] == 0
    )
    pooler = pond._avgpool2d_reshape_reduce if tiles_evenly else pond._avgpool2d_im2col_reduce
    with tf.device(prot.server_0.device_name):
        y_on_0 = pooler(x_on_0, pool_size, strides, padding)
    with tf.device(prot.server_1.device_name):
        y_on_1 = pooler(x_on_1, pool_size, strides, padding)

    cells = np.outer(
        _cells_per_window(height, pool_size[0], strides[0], padding),
        _cells_per_window(width, pool_size[1], strides[1], padding),
    )
    if (cells == pool_size[0] * pool_size[1]).all():
        return y_on_0, y_on_1, 1 / (pool_size[0] * pool_size[1])
    # A public [out_height, out_width] constant, broadcast over batch and channels.
    reciprocals = prot.define_constant(
        1 / cells, apply_scaling=x.is_scaled, factory=x.backing_dtype
    )
    return y_on_0, y_on_1, reciprocals


def fix_avgpool2d_same_padding() -> None:
    """Average pooling with padding="same" divided every window sum by the full pool area,
    counting the zero padding, so border outputs came out too small (tf.nn.avg_pool2d
    divides by the real cells the window covers). Silent: wrong predictions, no error."""
    from tf_encrypted.protocol.pond import pond

    _replace(pond, "_avgpool2d_core", _avgpool2d_core)


def _default_args_check(arg, arg_name, tf_layer_name):
    """tf-encrypted's check that a layer argument has its Keras default, lists read as tuples."""
    from tf_encrypted.keras.layers import layers_utils

    original = ORIGINALS[(layers_utils, "default_args_check")]
    original(tuple(arg) if isinstance(arg, list) else arg, arg_name, tf_layer_name)


def fix_default_args_check_of_json_configs() -> None:
    """A Keras config that went through JSON (e.g. a stored model manifest) has lists where
    Keras has tuples, so tfe.keras.models.model_from_config raised LayerArgNotImplementedError:
    `dilation_rate` argument is not implemented for layer Conv2D ([1, 1] != (1, 1))."""
    from tf_encrypted.keras.layers import layers_utils

    original = ORIGINALS.get((layers_utils, "default_args_check"), layers_utils.default_args_check)
    # Each layer module imported the function by name, so each holds its own reference.
    for name, module in list(sys.modules.items()):
        if name.startswith("tf_encrypted.") and getattr(module, "default_args_check", None) is original:
            _replace(module, "default_args_check", _default_args_check)


def fix_private_compare_permutation() -> None:
    """SecureNN's PrivateCompare (inside every ReLU's least-significant-bit protocol) sent server2
    each row's masked values in bit order, without the permutation the protocol requires: server2,
    which knows the mask r, learned where the blinded input first differs from r, a leak of every
    ReLU's input. The replacement permutes, and runs in small integers (private_compare.py)."""
    from tf_encrypted.protocol.securenn import securenn

    from privatemodel.runtime.mpc.private_compare import lsb_private

    _replace(securenn, "_lsb_private", lsb_private)


def _masked_product(operation: str):
    """tf-encrypted's product of two masked tensors (Beaver: x = a + alpha, y = b + beta, with alpha
    and beta public), where server0 computes alpha*b0 + alpha*beta as alpha*(b0 + beta): the
    product is linear in its second factor, also modulo 2^64. server0 runs two of the large
    products (convolutions over the layer's input) instead of three, as server1 does."""
    from tf_encrypted.protocol.pond.pond import PondMaskedTensor, PondPrivateTensor

    def product(prot, x, y, *conv_args):
        assert isinstance(x, PondMaskedTensor), type(x)
        assert isinstance(y, PondMaskedTensor), type(y)
        a, a0, a1, alpha_on_0, alpha_on_1 = x.unwrapped
        b, b0, b1, beta_on_0, beta_on_1 = y.unwrapped
        times = (lambda u, v: u.conv2d(v, *conv_args)) if operation == "conv2d" else (lambda u, v: u.matmul(v))
        with tf.name_scope(operation):
            triple = getattr(prot.triple_source, f"{operation}_triple")
            ab0, ab1 = triple(a, b, *conv_args)
            with tf.device(prot.server_0.device_name), tf.name_scope("combine"):
                z0 = ab0 + times(a0, beta_on_0) + times(alpha_on_0, b0 + beta_on_0)
            with tf.device(prot.server_1.device_name), tf.name_scope("combine"):
                z1 = ab1 + times(a1, beta_on_1) + times(alpha_on_1, b1)
            z = PondPrivateTensor(prot, z0, z1, x.is_scaled or y.is_scaled)
            return prot.truncate(z) if x.is_scaled and y.is_scaled else z

    return product


_conv2d_masked_masked = _masked_product("conv2d")
_matmul_masked_masked = _masked_product("matmul")


def speed_up_masked_products() -> None:
    """Private x private convolutions and matrix products (every Conv2D and Dense layer, whose
    weights are secret-shared): one large product fewer on server0, same result."""
    from tf_encrypted.protocol.pond import pond

    _replace(pond, "_conv2d_masked_masked", _conv2d_masked_masked)
    _replace(pond, "_matmul_masked_masked", _matmul_masked_masked)


def _image_patches(images, patch_size, strides, padding):
    """tf.image.extract_patches of an NHWC tensor (each patch's cells in row, column, channel
    order), made of one strided slice per cell of the patch: on int64 shares TensorFlow's
    ExtractImagePatches took 2-4 times as long, an eighth of a holder's CPU at batch 8."""
    patch_height, patch_width = patch_size
    stride_height, stride_width = strides
    _, height, width, _ = map(int, images.shape)
    if padding == "SAME":
        rows, top, bottom = _same_padding(height, patch_height, stride_height)
        columns, left, right = _same_padding(width, patch_width, stride_width)
        images = tf.pad(images, [[0, 0], [top, bottom], [left, right], [0, 0]])
    else:
        rows, columns = (height - patch_height) // stride_height + 1, (width - patch_width) // stride_width + 1
    last_row, last_column = stride_height * (rows - 1), stride_width * (columns - 1)
    cells = [
        images[:, i : i + last_row + 1 : stride_height, j : j + last_column + 1 : stride_width, :]
        for i in range(patch_height)
        for j in range(patch_width)
    ]
    return tf.concat(cells, axis=3)


def _conv2d_by_patches(x, y, strides, padding):
    """tf-encrypted's convolution of an NCHW tensor by an HWIO filter (its native tensors), the same
    values (sums of products modulo the tensor's ring, in any order), without its im2col: that
    transposed the image patches (kernel height x width times the input) to put the batch last,
    and each holder runs two of these per Conv2D layer. Here the patches are the rows of the
    product: the only transposes left are of the input and the output."""
    height, width, _, filters = map(int, y.shape)
    patches = _image_patches(tf.transpose(x.value, [0, 2, 3, 1]), (height, width), strides, padding)
    batch, rows, columns, patch = map(int, patches.shape)
    products = tf.matmul(tf.reshape(patches, [batch * rows * columns, patch]), tf.reshape(y.value, [patch, filters]))
    return x.factory.tensor(tf.transpose(tf.reshape(products, [batch, rows, columns, filters]), [0, 3, 1, 2]), encode=False)


def speed_up_convolutions() -> None:
    """Every convolution of tf-encrypted's native tensors (the shares and masks of each Conv2D)."""
    from tf_encrypted.tensor import native

    _replace(native, "conv2d", _conv2d_by_patches)


def apply_all() -> None:
    fix_avgpool2d_reshape_reduce()
    fix_private_compare_permutation()
    fix_avgpool2d_same_padding()
    fix_default_args_check_of_json_configs()
    speed_up_masked_products()
    speed_up_convolutions()
