"""The ingress's staging area: tokens, replays, expiry and bounds, on real files."""
import time

import numpy as np
import pytest

from privatemodel.runtime.mpc.https import Refused
from privatemodel.runtime.player.ingress import StagingArea

TOKEN = "t" * 32
OTHER = "o" * 32


def rid(number):
    return f"{number:032x}"


def write_answer(area, request_id, values):
    """What serving's graph leaves beside the query share: a serialized int64 tensor."""
    import tensorflow as tf

    (area.directory / f"{request_id}.out").write_bytes(tf.io.serialize_tensor(tf.constant(values, tf.int64)).numpy())


def test_staged_share_lands_whole_and_the_answer_needs_the_token(tmp_path):
    area = StagingArea(tmp_path)
    area.stage(rid(1), TOKEN, b"\x01" * 16, 2)
    assert area.input_path(rid(1)).read_bytes() == b"\x01" * 16
    with pytest.raises(Refused, match="no answer yet"):
        area.answer(rid(1), TOKEN)
    write_answer(area, rid(1), [[1, 2], [3, 4]])
    with pytest.raises(Refused, match="wrong token") as refused:
        area.answer(rid(1), OTHER)
    assert refused.value.status == 403
    np.testing.assert_array_equal(area.answer(rid(1), TOKEN), [[1, 2], [3, 4]])
    # Answered once, then forgotten: files too.
    with pytest.raises(Refused, match="not staged here"):
        area.answer(rid(1), TOKEN)
    assert list(tmp_path.iterdir()) == []


def test_a_request_id_is_staged_once(tmp_path):
    area = StagingArea(tmp_path)
    area.stage(rid(2), TOKEN, b"\x00" * 8, 1)
    with pytest.raises(Refused, match="already staged") as refused:
        area.stage(rid(2), OTHER, b"\x02" * 8, 1)
    assert refused.value.status == 409
    assert area.input_path(rid(2)).read_bytes() == b"\x00" * 8


def test_a_half_written_answer_is_not_handed_out(tmp_path):
    area = StagingArea(tmp_path)
    area.stage(rid(3), TOKEN, b"\x00" * 8, 1)
    write_answer(area, rid(3), [[7] * 10])
    whole = (tmp_path / f"{rid(3)}.out").read_bytes()
    (tmp_path / f"{rid(3)}.out").write_bytes(whole[: len(whole) - 9])
    with pytest.raises(Refused, match="no answer yet"):
        area.answer(rid(3), TOKEN)


def test_abandoned_requests_expire_and_staging_is_bounded(tmp_path):
    area = StagingArea(tmp_path, expiry=0.2, max_entries=3, max_bytes=64)
    for number in range(3):
        area.stage(rid(number), TOKEN, b"\x00" * 8, 1)
    with pytest.raises(Refused, match="staging is full") as refused:
        area.stage(rid(9), TOKEN, b"\x00" * 8, 1)
    assert refused.value.status == 503
    time.sleep(0.3)
    assert area.sweep() == 3
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(Refused, match="staging is full"):
        area.stage(rid(10), TOKEN, b"\x00" * 72, 1)
    area.stage(rid(11), TOKEN, b"\x00" * 64, 8)


def test_leftovers_of_a_previous_run_are_cleared(tmp_path):
    (tmp_path / f"{rid(5)}.in").write_bytes(b"old query share")
    StagingArea(tmp_path)
    assert list(tmp_path.iterdir()) == []
