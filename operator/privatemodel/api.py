"""A notebook API in the spirit of Syft Keras: share a model, serve it, query it, stop.

    import privatemodel as pm
    cluster = pm.LocalCluster().start()      # three players on this machine
    model = pm.PrivateModel(keras_model)      # or a path to a Keras .h5
    model.share(cluster)                      # the model owner's step
    model.serve(num_requests=3)               # returns once clients can connect
    client = pm.Client(cluster)               # in this process or another one
    client.query(images)                      # logits; only this process sees them
    model.stop(); cluster.stop()
"""
import subprocess
import tempfile
from pathlib import Path

from privatemodel.runtime.client.client import PrivateClient
from privatemodel.runtime.local.cluster import LocalCluster as _Players
from privatemodel.runtime.local.cluster import LocalServing


class LocalCluster(_Players):
    def start(self) -> "LocalCluster":
        self.up()
        return self

    def stop(self) -> None:
        self.down()


class PrivateModel:
    def __init__(self, model):
        """A tf.keras model, or the path of a Keras .h5 file."""
        self._model = model
        self._cluster = None
        self._serving = None

    def share(self, cluster: LocalCluster) -> None:
        """Secret-share the weights onto the players, in a separate process like a real model owner."""
        with tempfile.TemporaryDirectory(prefix="privatemodel-") as scratch:
            path = self._model if isinstance(self._model, (str, Path)) else self._save(Path(scratch) / "model.h5")
            result = subprocess.run(
                cluster.share_command(path),
                capture_output=True, text=True,
            )
        if result.returncode != 0:
            raise RuntimeError(result.stderr.strip().splitlines()[-1] if result.stderr.strip() else "share failed")
        self._cluster = cluster

    def serve(self, num_requests=None, port=None) -> str:
        """Start serving; returns the endpoint URL once a client can safely connect."""
        if self._cluster is None:
            raise RuntimeError("share the model onto a cluster first: model.share(cluster)")
        self._serving = LocalServing(self._cluster, port)
        return self._serving.start(num_requests=num_requests)

    @property
    def url(self) -> str:
        return self._serving.url

    def wait(self, timeout=None):
        """Block until serving has answered its num_requests; returns its exit code."""
        return self._serving.wait(timeout)

    def stop(self) -> None:
        if self._serving:
            self._serving.stop()

    def _save(self, path):
        self._model.save(path, save_format="h5")
        return path


class Client(PrivateClient):
    def __init__(self, cluster: LocalCluster, timeout=60.0):
        """Reaches the cluster's serving and ingresses over HTTPS, as its access file says."""
        super().__init__(cluster.access_path, timeout)

    def query(self, x):
        return self.predict(x)
