"""What the runtime's parties and the operator agree on: names, ports and files. No TensorFlow here.

Parties: three SecureNN players and the two controllers that drive them (the model owner's
sharing step and serving). Clients are not parties: they never speak TensorFlow gRPC, only HTTPS
to the share holders' ingress and to serving.
"""

# SecureNN's fixed roles: server0 and server1 hold the shares, server2 produces randomness.
PLAYER_NAMES = ("server0", "server1", "server2")
SHARE_HOLDERS = ("server0", "server1")
# The processes that send graphs to the players (the trusted controllers), by party name.
CONTROLLER_NAMES = ("share", "serve")
PARTY_NAMES = PLAYER_NAMES + CONTROLLER_NAMES

# TensorFlow gRPC ports when parties reach each other through the TLS mesh (on Kubernetes).
# Every TensorFlow server listens on loopback only; a party reaches each peer through a TLS
# tunnel listening on that peer's port on its own loopback, so one hostmap serves every party.
MESH_TF_PORTS = {"server0": 4440, "server1": 4441, "server2": 4442, "share": 4443, "serve": 4444}
# The hostmap's section that gives each party's mesh address.
MESH_KEY = "mesh"
# Each party's mutual-TLS listener: the only port through which peers reach its TensorFlow server.
MESH_PORT = 4450
# HTTPS for clients: the share holders' ingress and the serving endpoint.
INGRESS_PORT = 8443
SERVING_PORT = 8443

# The largest batch one request may carry, unless serving and the ingress are told otherwise.
DEFAULT_MAX_BATCH = 64
# Batch sizes serving on Kubernetes compiles once ready, while no request waits: concurrent
# clients' requests are coalesced into these, and a size's first step otherwise waits seconds for
# its compile (3-5 s each).
IDLE_WARM_UP_SIZES = (2, 4, 8)

# A party's TLS directory (the layout of a kubernetes.io/tls Secret plus the CA).
TLS_CA = "ca.crt"
TLS_CERT = "tls.crt"
TLS_KEY = "tls.key"

# The client's access file: where serving and the two ingresses are, and the model's CA.
# {"serving": URL, "server0": URL, "server1": URL, "ca": PEM}; each server is verified as the party
# name above (its certificate's DNS name), whatever host the URL names. A model with several player
# triples adds "triples": a list of such objects, one per triple (each with its own CA), the first
# being the top level's; a client spreads its requests across them.
ACCESS_FILE = "access.json"
ACCESS_KEYS = ("serving", "server0", "server1", "ca")
ACCESS_TRIPLES = "triples"
