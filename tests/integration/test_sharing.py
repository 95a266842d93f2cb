"""The model owner's step: what is accepted, what is refused, and that a refusal changes nothing."""
import json

from integration.support import manifest_of, run_cli


def share(cluster, model, *extra):
    return run_cli("share", "--model", str(model), "--config", str(cluster.hostmap_path), *extra)


def test_each_player_holds_only_its_own_share(cluster, shared):
    share_id = shared["share_id"]
    files = {p: cluster.state_dir(p) / f"weights-{share_id}-{p}.share" for p in ("server0", "server1", "server2")}
    assert files["server0"].stat().st_size > 0 and files["server1"].stat().st_size > 0
    assert not files["server2"].exists()
    assert files["server0"].read_bytes() != files["server1"].read_bytes()
    assert [manifest_of(cluster, p)["share_id"] for p in ("server0", "server1", "server2")] == [share_id] * 3
    assert manifest_of(cluster)["model"]["input_shape"] == [28, 28, 1]


def test_input_shape_mismatch_names_both_shapes(cluster, shared, reference_model, tmp_path):
    result = share(cluster, reference_model["path"], "--input-shape", "1,32,32,1", "--error-file", str(tmp_path / "reason"))
    assert result.returncode == 2
    expected = "input shape mismatch: expected (1, 32, 32, 1), the model has (None, 28, 28, 1)"
    assert expected in result.stderr
    assert (tmp_path / "reason").read_text().strip() == expected
    assert manifest_of(cluster)["share_id"] == shared["share_id"]


def test_weights_only_h5_needs_and_accepts_an_architecture(cluster, shared, reference_model, tmp_path):
    import tensorflow as tf

    model = tf.keras.models.load_model(reference_model["path"], compile=False)
    model.save_weights(tmp_path / "weights.h5")
    (tmp_path / "architecture.json").write_text(model.to_json())

    refused = share(cluster, tmp_path / "weights.h5")
    assert refused.returncode == 2
    assert "holds weights only, no architecture; pass the architecture JSON too" in refused.stderr

    accepted = share(cluster, tmp_path / "weights.h5", "--architecture", str(tmp_path / "architecture.json"))
    assert accepted.returncode == 0, accepted.stderr
    manifest = manifest_of(cluster)
    assert manifest["share_id"] != shared["share_id"]
    assert manifest["model"]["weight_shapes"] == json.loads(json.dumps(shared["model"]["weight_shapes"]))
    # The previous share is emptied, not left behind.
    assert (cluster.state_dir("server0") / f"weights-{shared['share_id']}-server0.share").read_bytes() == b""
    shared.update(manifest)
