"""The stunnel configuration each party gets (pure: no process started here; tests/integration runs it)."""
from privatemodel import contract
from privatemodel.runtime.mpc import hostmap as hostmaps
from privatemodel.runtime.mpc.mesh import peers_of, stunnel_config

HOSTMAP = hostmaps.validate({
    **{name: f"127.0.0.1:{port}" for name, port in contract.MESH_TF_PORTS.items()},
    "mesh": {name: f"{name}.pods.example:{contract.MESH_PORT}" for name in contract.PARTY_NAMES},
})


def sections(config):
    found, current = {}, None
    for line in config.splitlines():
        if line.startswith("["):
            current = found.setdefault(line.strip("[]"), {})
        elif current is not None and " = " in line:
            key, value = line.split(" = ", 1)
            current.setdefault(key, []).append(value)
    return found


def test_a_player_listens_once_and_tunnels_to_every_other_party(tmp_path):
    config = sections(stunnel_config("server1", HOSTMAP, tmp_path))
    assert set(config) == {"server1-in", "to-server0", "to-server2", "to-share", "to-serve"}
    listener = config["server1-in"]
    # Reached on every interface (a DNS name in the hostmap), it hands over to TensorFlow on loopback.
    assert listener["accept"] == [f"0.0.0.0:{contract.MESH_PORT}"] and listener["connect"] == ["127.0.0.1:4441"]
    for section in config.values():
        assert section["verifyChain"] == ["yes"] and section["requireCert"] == ["yes"]
        assert section["CAfile"] == [str(tmp_path.resolve() / contract.TLS_CA)]
        assert section["sslVersionMin"] == ["TLSv1.3"]
    tunnel = config["to-serve"]
    assert tunnel["client"] == ["yes"] and tunnel["accept"] == ["127.0.0.1:4444"]
    assert tunnel["connect"] == [f"serve.pods.example:{contract.MESH_PORT}"] and tunnel["checkHost"] == ["serve"]


def test_controllers_tunnel_to_the_players_only():
    assert peers_of("serve") == contract.PLAYER_NAMES
    assert peers_of("share") == contract.PLAYER_NAMES
    assert peers_of("server2") == ("server0", "server1", "share", "serve")
