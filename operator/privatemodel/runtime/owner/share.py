"""The model owner's step: secret-share a Keras model's weights onto the players.

The plaintext weights exist only in this process. Each player receives only its own share (server0
derives its share from a seed, server1 gets the masked difference) and writes it to its own disk.
"""
import datetime
import logging
import os
import secrets
import time

import numpy as np

from privatemodel.runtime.owner import model as models
from privatemodel.runtime.player import storage as shares
from privatemodel.runtime.mpc.hostmap import PLAYER_NAMES
from privatemodel.runtime.mpc.session import connect_securenn

log = logging.getLogger(__name__)


def share_model(model_path, hostmap, architecture=None, input_shape=None, output_shape=None, tls_dir=None) -> dict:
    """Validate the model, then share it; nothing on the players changes unless validation passes."""
    started = time.monotonic()
    keras_model = models.load_keras_model(model_path, architecture)
    summary, weights = models.summarize(keras_model, input_shape, output_shape)
    log.info(
        "model %s: %d layers served, %d weights (%d values), input %s, output %s%s",
        model_path, len(summary.config["layers"]), len(weights), sum(w.size for w in weights),
        summary.input_shape, summary.output_shape,
        f", {summary.output_activation} applied by the client" if summary.output_activation else "",
    )

    protocol = connect_securenn(hostmap, "share", tls_dir, work_dir=os.environ.get("TMPDIR", "/tmp"))
    fixedpoint = protocol.fixedpoint_config
    models.check_range(summary, weights, fixedpoint.bound_single_precision / fixedpoint.scaling_factor)
    previous = _previous_share_id(hostmap)
    share_id = secrets.token_hex(8)
    flat = np.concatenate([w.ravel() for w in weights]).astype(np.float64)
    # Rounded, not truncated as tf-encrypted's _encode does: half the encoding error.
    secret = protocol.tensor_factory.tensor(np.round(flat * fixedpoint.scaling_factor).astype(np.int64))
    share0, share1 = protocol._share(secret)
    del flat, secret, weights
    shares.write_weights("server0", share_id, share0.value)
    shares.write_weights("server1", share_id, share1.value)

    manifest = {
        "format": shares.FORMAT_VERSION,
        "share_id": share_id,
        "shared_at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "protocol": "SecureNN",
        "model": summary.to_dict(),
        "encoding": {
            "ring_bits": fixedpoint.nbits,
            "scaling_factor": fixedpoint.scaling_factor,
            # Values beyond this overflow the fixed-point encoding.
            "max_abs_value": fixedpoint.bound_single_precision / fixedpoint.scaling_factor,
        },
    }
    # server2 first: the share holders' manifests are the commit point.
    for player in ("server2",) + shares.SHARE_HOLDERS:
        shares.write_manifest(player, manifest)
    # Remote writes run asynchronously: read back, so a failed write is an error here, not at serving.
    for player in shares.SHARE_HOLDERS:
        if (shares.read_manifest(player, hostmap[player]) or {}).get("share_id") != share_id:
            raise shares.NoSharesError(f"player {player} at {hostmap[player]} did not keep the shares of {share_id}")
    if previous and previous != share_id:
        for player in shares.SHARE_HOLDERS:
            shares.erase_weights(player, previous)
    log.info("shared %s as %s onto %s in %.1f s", model_path, share_id, ", ".join(PLAYER_NAMES), time.monotonic() - started)
    return manifest


def _previous_share_id(hostmap):
    # Any format: a share from an older privatemodel is replaced all the same.
    manifest = shares.read_manifest("server0", hostmap["server0"], any_format=True)
    return manifest and manifest["share_id"]
