"""Real players over loopback: three `privatemodel player` processes, real shares, real serving.

Fixtures for the suites that run the engine (integration, faults): each suite's conftest imports
the ones it uses, so either runs alone.
"""
import pytest

from privatemodel.runtime import reference
from integration.support import local_players, manifest_of, run_cli
from privatemodel.runtime.local.cluster import LocalServing


@pytest.fixture(scope="session")
def reference_model(reference_model_path):
    import tensorflow as tf

    _, _, x_test, y_test = reference.load_digits()
    plaintext = tf.keras.models.load_model(reference_model_path, compile=False).predict(x_test, verbose=0)
    return {"path": reference_model_path, "x": x_test, "y": y_test, "plaintext": plaintext}


@pytest.fixture(scope="session")
def cluster(tmp_path_factory):
    with local_players(tmp_path_factory.mktemp("cluster")) as players:
        yield players


@pytest.fixture(scope="session")
def scratch_cluster(tmp_path_factory):
    """Players whose shares tests may replace or break: the reference model stays on `cluster`."""
    with local_players(tmp_path_factory.mktemp("scratch-cluster")) as players:
        yield players


@pytest.fixture(scope="session")
def shared(cluster, reference_model):
    result = run_cli("share", "--model", str(reference_model["path"]), "--config", str(cluster.hostmap_path))
    assert result.returncode == 0, result.stderr
    return manifest_of(cluster)


@pytest.fixture(scope="session")
def serving(cluster, shared):
    endpoint = LocalServing(cluster)
    endpoint.start(extra_args=["--warm-up", "1,32"])
    yield endpoint
    endpoint.stop()


@pytest.fixture(scope="session")
def client(cluster, serving):
    """A client of the shared serving, over HTTPS as every client is."""
    from privatemodel.runtime.client.client import PrivateClient

    return PrivateClient(cluster.access_path)
