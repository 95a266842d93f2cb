"""Reading a query from a file: a .npy array, or a .png image scaled to the model's input."""
from pathlib import Path

import numpy as np


class InputFileError(ValueError):
    pass


def load_query(path, input_shape) -> np.ndarray:
    """A batch: (n,) + input_shape for an .npy holding a batch, (1,) + input_shape otherwise."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise InputFileError(f"{path}: not a readable .npy array: {error}") from None
        if array.ndim == 0:
            raise InputFileError(f"{path}: holds a single number; a query is an array of shape {tuple(input_shape)} or a batch of them")
        return array[np.newaxis] if array.shape == tuple(input_shape) else array
    if suffix == ".png":
        return _load_png(path, input_shape)[np.newaxis]
    raise InputFileError(f"{path}: unsupported query file type {suffix or '(none)'}; use .npy or .png")


def _load_png(path, input_shape):
    from PIL import Image, UnidentifiedImageError

    if len(input_shape) != 3 or input_shape[-1] not in (1, 3):
        raise InputFileError(f"{path}: a .png fits only image models (H, W, 1 or 3); this model takes {tuple(input_shape)}")
    height, width, channels = input_shape
    try:
        with Image.open(path) as image:
            image = image.convert("L" if channels == 1 else "RGB").resize((width, height), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
    except (OSError, UnidentifiedImageError) as error:
        raise InputFileError(f"{path}: not a readable PNG image: {error}") from None
    return pixels.reshape(input_shape)
