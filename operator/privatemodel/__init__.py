"""Serve Keras models privately: SecureNN inference by three TF Encrypted players."""

_API = ("LocalCluster", "PrivateModel", "Client")


def __getattr__(name):
    # Lazy, so `import privatemodel.controller` never pulls in TensorFlow.
    if name in _API:
        from privatemodel import api

        return getattr(api, name)
    raise AttributeError(f"module 'privatemodel' has no attribute {name!r}")
