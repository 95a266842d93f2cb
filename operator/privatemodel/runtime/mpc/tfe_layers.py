"""Keras layers tfe.keras lacks or cannot run under SecureNN, for inference on private tensors.

Installed into tf_encrypted.keras.layers by privatemodel.runtime.mpc.tfe, where tfe.keras's
model_from_config looks layers up by their Keras class name. Tensors are NHWC, as in Keras.
"""
import math

import tf_encrypted as tfe
from tf_encrypted.keras.engine import Layer


class ZeroPadding2D(Layer):
    """Zero padding is public: each share holder pads its own share with zeros."""

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        _check_channels_last(data_format)
        if isinstance(padding, int):
            padding = ((padding, padding), (padding, padding))
        (top, bottom), (left, right) = (
            (side, side) if isinstance(side, int) else tuple(side) for side in padding
        )
        self.paddings = [[0, 0], [top, bottom], [left, right], [0, 0]]

    def call(self, inputs):
        return tfe.pad(inputs, self.paddings)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        return [batch, height + sum(self.paddings[1]), width + sum(self.paddings[2]), channels]


class MaxPooling2D(Layer):
    """tf-encrypted 0.9.1's MaxPooling2D calls maxpool2d_with_argmax, which SecureNN lacks.

    Each output is the max over its window, taken pairwise with SecureNN's private comparison
    (maximum = select(x > y)). SAME padding repeats the edge cells: every window that reaches
    into the padding also covers the edge cell it repeats, so the max is unchanged.
    """

    def __init__(self, pool_size=(2, 2), strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        _check_channels_last(data_format)
        self.pool_size = _pair(pool_size)
        self.strides = _pair(strides) if strides is not None else self.pool_size
        self.padding = padding.upper()
        if self.padding not in ("VALID", "SAME"):
            raise ValueError(f"padding {padding!r}: expected valid or same")

    def call(self, inputs):
        _, height, width, _ = (int(d) for d in inputs.shape)
        x = inputs
        if self.padding == "SAME":
            x = _repeat_edges(x, 1, *_same_padding(height, self.pool_size[0], self.strides[0]))
            x = _repeat_edges(x, 2, *_same_padding(width, self.pool_size[1], self.strides[1]))
        out_height, out_width = self.compute_output_shape(inputs.shape)[1:3]
        windows = [
            x[:, i : i + self.strides[0] * (out_height - 1) + 1 : self.strides[0],
              j : j + self.strides[1] * (out_width - 1) + 1 : self.strides[1], :]
            for i in range(self.pool_size[0])
            for j in range(self.pool_size[1])
        ]
        return _tree_maximum(windows)

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = (int(d) for d in input_shape)
        if self.padding == "SAME":
            sizes = [math.ceil(size / stride) for size, stride in zip((height, width), self.strides)]
        else:
            sizes = [(size - pool) // stride + 1 for size, pool, stride in zip((height, width), self.pool_size, self.strides)]
        return [batch, *sizes, channels]


def _check_channels_last(data_format):
    if data_format not in (None, "channels_last"):
        raise NotImplementedError(f"data_format {data_format!r}: only channels_last is implemented")


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(int(v) for v in value)


def _same_padding(size, pool, stride):
    """TensorFlow's SAME: the padding is split evenly, any odd cell going after."""
    total = max((math.ceil(size / stride) - 1) * stride + pool - size, 0)
    return total // 2, total - total // 2


def _repeat_edges(x, axis, before, after):
    if not before and not after:
        return x
    size = int(x.shape[axis])

    def cells(start, stop):
        index = [slice(None)] * 4
        index[axis] = slice(start, stop)
        return x[tuple(index)]

    parts = [cells(0, 1)] * before + [x] + [cells(size - 1, size)] * after
    return tfe.concat(parts, axis=axis)


def _tree_maximum(tensors):
    if len(tensors) == 1:
        return tensors[0]
    half = len(tensors) // 2
    return tfe.maximum(_tree_maximum(tensors[:half]), _tree_maximum(tensors[half:]))


def install() -> None:
    tfe.keras.layers.ZeroPadding2D = ZeroPadding2D
    tfe.keras.layers.MaxPooling2D = MaxPooling2D
