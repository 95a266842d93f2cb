import numpy as np
import pytest
from PIL import Image

from privatemodel.runtime.client.inputs import InputFileError, load_query

SHAPE = (28, 28, 1)


def test_npy_single_example_gets_a_batch_axis(tmp_path):
    np.save(tmp_path / "one.npy", np.ones(SHAPE, np.float32))
    np.save(tmp_path / "batch.npy", np.ones((5,) + SHAPE, np.float32))
    assert load_query(tmp_path / "one.npy", SHAPE).shape == (1,) + SHAPE
    assert load_query(tmp_path / "batch.npy", SHAPE).shape == (5,) + SHAPE


def test_png_is_scaled_to_the_model_input(tmp_path):
    pixels = np.zeros((56, 40), np.uint8)
    pixels[:, :20] = 255
    Image.fromarray(pixels).save(tmp_path / "digit.png")
    query = load_query(tmp_path / "digit.png", SHAPE)
    assert query.shape == (1,) + SHAPE
    assert query.min() == 0.0 and query.max() == 1.0
    assert query[0, :, 0, 0].mean() == 1.0 and query[0, :, -1, 0].mean() == 0.0


@pytest.mark.parametrize("name, content, message", [
    ("query.txt", b"1 2 3", "unsupported query file type .txt"),
    ("broken.npy", b"not an array", "not a readable .npy array"),
    ("broken.png", b"not a png", "not a readable PNG image"),
])
def test_bad_files_are_named(tmp_path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(InputFileError, match=message):
        load_query(tmp_path / name, SHAPE)


def test_png_needs_an_image_model(tmp_path):
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "x.png")
    with pytest.raises(InputFileError, match=r"this model takes \(10,\)"):
        load_query(tmp_path / "x.png", (10,))
