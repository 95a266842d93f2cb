import pytest


@pytest.fixture(scope="module")
def protocol():
    """SecureNN with its three players in this process: the engine's logic without sockets."""
    from privatemodel.runtime.mpc.tfe import tfe

    tfe.set_config(tfe.LocalConfig(["server0", "server1", "server2"]))
    protocol = tfe.protocol.SecureNN()
    tfe.set_protocol(protocol)
    return protocol
