"""The model shared again while serve runs: no request is answered with the old model any more."""
import json

from faults import wire
from faults.outcomes import CLEAR, agrees_with_keras, error_of, http_error
from integration.support import https_call, manifest_of, run_cli
from privatemodel.runtime.client.client import PrivateClient, ServingError


def negated_model(reference_path, path):
    """The reference model with its last layer negated: other logits, other classes."""
    import tensorflow as tf

    model = tf.keras.models.load_model(reference_path, compile=False)
    last = model.layers[-1]
    last.set_weights([-w for w in last.get_weights()])
    model.save(path, save_format="h5")
    return model


def test_after_a_reshare_the_running_serve_answers_nothing_and_a_new_one_serves_the_new_model(serving_cluster, reference_model, tmp_path, faults):
    cluster, serving = serving_cluster
    x = reference_model["x"][:4]
    old_client = PrivateClient(cluster.access_path)
    assert agrees_with_keras(old_client.predict(x), reference_model["plaintext"][:4])
    old_share_id = manifest_of(cluster)["share_id"]

    new_model = negated_model(reference_model["path"], tmp_path / "negated.h5")
    shared = run_cli("share", "--model", str(tmp_path / "negated.h5"), "--config", str(cluster.hostmap_path))
    assert shared.returncode == 0, shared.stderr
    new_share_id = manifest_of(cluster)["share_id"]
    stale = rf"\(503\): the model was shared again \(now {new_share_id}\); this serve loaded {old_share_id} and answers nothing more"

    # A request without a share id (a client that skips it) is refused too: the shares are checked.
    request_id = wire.stage(old_client, x[:1])
    outcome = faults.attempt("re-shared while serving: POST /v1/predict without a shareId",
                             lambda: http_error(*https_call(cluster, serving.url + "/v1/predict", "POST",
                                                            json.dumps({"id": request_id, "count": 1}).encode())),
                             stale.replace(r"\(503\)", "503"), deadline=30)
    assert outcome.kind == CLEAR, outcome
    # Serving has stopped: a client still on the old model finds it gone, never an old answer.
    outcome = faults.attempt("re-shared while serving: then a client that read the old model's metadata",
                             lambda: error_of(lambda: old_client.predict(x), ServingError), r"serve at \S+ (is unreachable|refused POST /v1/predict \(410\): shutting down)", deadline=30)
    assert outcome.kind == CLEAR, outcome
    assert serving.wait(timeout=30) == 3
    assert "error: the model was shared again" in serving.process.log_tail(1)

    serving.start()
    new_client = PrivateClient(cluster.access_path)
    assert new_client.share_id == new_share_id
    assert agrees_with_keras(new_client.predict(x), new_model.predict(x, verbose=0))
    # A client still holding the old model's metadata is told to fetch it again.
    outcome = faults.attempt("re-shared, serve restarted: a client with the old model's metadata", lambda: error_of(lambda: old_client.predict(x), ServingError),
                             rf"\(400\): the client prepared its query for shares {old_share_id}, this server serves {new_share_id}", deadline=30)
    assert outcome.kind == CLEAR, outcome
