"""Every fact the operator's code shares with the CRD, the chart and the runtime image, once.

crds/privatemodels.yaml and the chart repeat some of these (YAML cannot import Python);
tests/unit/test_controller_crd_chart.py checks that the copies agree.
"""
from privatemodel import contract

# The custom resource.
GROUP = "ml.privatemodel.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "PrivateModel"
PLURAL = "privatemodels"

# Children carry these (prefixed, so they never collide with users' labels).
LABEL_MODEL = f"{GROUP}/model"
LABEL_COMPONENT = f"{GROUP}/component"
# Which SecureNN player a player pod plays: each player is its own StatefulSet (its own Secret).
LABEL_PLAYER = f"{GROUP}/player"
# Set on the children of triples 1 and up (spec.serving.replicas > 1): which player triple they
# belong to. Triple 0's children carry none (they predate scale-out, and a new pod label would roll
# its players and lose their shares); it is told apart by app.kubernetes.io/instance (naming.Triple).
LABEL_TRIPLE = f"{GROUP}/triple"
LABEL_INSTANCE = "app.kubernetes.io/instance"
# Set on the sharing Job: which sharing it performs, and which player pods it shares onto.
LABEL_SHARING_DIGEST = f"{GROUP}/sharing-digest"
ANNOTATION_PLAYER_UIDS = f"{GROUP}/player-uids"
# Set on the serving pod template: a new sharing restarts serving, which loads shares at start-up.
ANNOTATION_SHARED_DIGEST = f"{GROUP}/shared-digest"
# Recommended labels (https://kubernetes.io/docs/concepts/overview/working-with-objects/common-labels/).
APP_NAME = "privatemodel"
MANAGED_BY = "privatemodel-operator"

# On every child the operator applies: the hash of the manifest it applied, so it patches only on change.
ANNOTATION_APPLIED_HASH = f"{GROUP}/applied-hash"

FINALIZER = f"{GROUP}/finalizer"

# How often each PrivateModel is reconciled (seconds): children are read, not watched.
RECONCILE_INTERVAL = 2.0


class Component:
    """What a child is for; part of its name and of its labels."""

    PLAYERS = "players"  # headless Service, one StatefulSet per player (named after the player)
    HOSTMAP = "hostmap"  # ConfigMap read by every runtime pod
    SHARING = "sharing"  # the Job that secret-shares the model
    SERVING = "serving"  # Deployment + the clients' Service
    INGRESS = "ingress"  # the clients' Service of a share holder's HTTPS ingress
    MESH = "mesh"  # a controller's (share, serve) mesh address: a ClusterIP Service
    TLS = "tls"  # one Secret per party: the model's CA certificate, the party's key and certificate
    ACCESS = "access"  # ConfigMap for clients: the URLs and the CA that signs the servers


# spec.serving.replicas: independent player triples, each with its own sharing and serving.
MAX_REPLICAS = 8


class Phase:
    PENDING = "Pending"
    SHARING = "Sharing"
    STARTING = "Starting"  # the weights are shared; serving does not answer yet
    SERVING = "Serving"
    COMPLETED = "Completed"
    FAILED = "Failed"


class ConditionType:
    PLAYERS_READY = "PlayersReady"
    WEIGHTS_SHARED = "WeightsShared"
    SERVING = "Serving"
    READY = "Ready"  # rollup of the three above, computed by conditions.rollup
    # With spec.serving.replicas > 1: True while the model serves through some triples but not all.
    DEGRADED = "Degraded"


class Reason:
    # PlayersReady
    PLAYERS_STARTING = "PlayersStarting"
    PLAYERS_READY = "PlayersReady"
    # WeightsShared
    WAITING_FOR_PLAYERS = "WaitingForPlayers"
    SHARING_IN_PROGRESS = "SharingInProgress"
    SHARED = "Shared"
    SHARING_FAILED = "SharingFailed"
    MODEL_SOURCE_NOT_FOUND = "ModelSourceNotFound"  # the Secret, ConfigMap, key or claim named in spec.model
    SHARES_LOST = "SharesLost"  # a player pod that held a share was replaced
    # Serving
    WAITING_FOR_SHARES = "WaitingForShares"
    SERVING_STARTING = "ServingStarting"
    SERVING_READY = "ServingReady"
    REQUESTS_COMPLETED = "RequestsCompleted"
    # Degraded (False); when True it takes the reason of the first triple that does not serve
    ALL_TRIPLES_SERVING = "AllTriplesServing"
    NOT_SERVING = "NotServing"
    # Ready (otherwise it takes the reason of the sub-condition that holds it back)
    READY = "Ready"
    INVALID_SPEC = "InvalidSpec"
    INITIALIZING = "Initializing"  # a sub-condition has not been set yet


# Reasons that need the user to act (fix the source, edit the spec, delete the failed Job).
FAILURE_REASONS = frozenset({Reason.SHARING_FAILED, Reason.MODEL_SOURCE_NOT_FOUND})

# The runtime parties the sharing Job and serving play (contract.CONTROLLER_NAMES: "share", "serve").
SHARING_PARTY, SERVING_PARTY = contract.CONTROLLER_NAMES

PROTOCOL_SECURENN = "SecureNN"
PROTOCOLS = (PROTOCOL_SECURENN,)

SERVING_READY_PATH = "/healthz"
SERVING_STATUS_PATH = "/status"
SERVING_METRICS_PATH = "/metrics"
# The Prometheus Operator's kind, for serving's metrics (when the chart enables it).
SERVICE_MONITOR_API_VERSION = "monitoring.coreos.com/v1"
# A share holder's ingress answers 200 here once its player is up.
INGRESS_READY_PATH = "/v2/health/ready"
# How clients outside the cluster reach serving and the ingresses: the clients' Services' type.
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")

# Paths inside runtime containers.
CONFIG_DIR = "/etc/privatemodel"
HOSTMAP_FILE = "hostmap.json"
HOSTMAP_PATH = f"{CONFIG_DIR}/{HOSTMAP_FILE}"
# The party's own TLS Secret, inside the same projected volume as the hostmap.
TLS_DIR_NAME = "tls"
TLS_DIR = f"{CONFIG_DIR}/{TLS_DIR_NAME}"
# Where client pods mount the model's access ConfigMap (examples, e2e).
ACCESS_DIR = f"{CONFIG_DIR}/access"
STATE_DIR = "/var/lib/privatemodel"
MODEL_DIR = "/model"
ARCHITECTURE_DIR = "/model-architecture"
# Root filesystems are read-only; TensorFlow and Keras write caches under HOME and /tmp.
TMP_DIR = "/tmp"
TERMINATION_LOG = "/dev/termination-log"
RUNTIME_COMMAND = "privatemodel"
# Runtime containers run as this user; runAsNonRoot cannot check a named USER in an image.
RUNTIME_UID = 1000

# Sharing is one attempt plus a couple of retries; then WeightsShared=False/SharingFailed.
SHARING_BACKOFF_LIMIT = 2
SHARING_DEADLINE_SECONDS = 1800
SHARING_DIGEST_LENGTH = 10

# Operator defaults: the chart sets these env vars; the values below serve local `kopf run`.
ENV_RUNTIME_IMAGE = "PRIVATEMODEL_RUNTIME_IMAGE"
ENV_IMAGE_PULL_POLICY = "PRIVATEMODEL_IMAGE_PULL_POLICY"
ENV_CLUSTER_DOMAIN = "PRIVATEMODEL_CLUSTER_DOMAIN"
ENV_SERVICE_TYPE = "PRIVATEMODEL_SERVICE_TYPE"
# JSON {"requests": ..., "limits": ...} for pods whose PrivateModel sets no resources.
ENV_PLAYER_RESOURCES = "PRIVATEMODEL_PLAYER_RESOURCES"
ENV_SERVING_RESOURCES = "PRIVATEMODEL_SERVING_RESOURCES"
# "true": a ServiceMonitor per model for serving's metrics, with these labels (JSON).
ENV_SERVICE_MONITOR = "PRIVATEMODEL_SERVICE_MONITOR"
ENV_SERVICE_MONITOR_LABELS = "PRIVATEMODEL_SERVICE_MONITOR_LABELS"
# Comma-separated images PrivateModels may name besides the runtime image (a trailing * is a prefix).
ENV_ALLOWED_IMAGES = "PRIVATEMODEL_ALLOWED_IMAGES"
# The port of the operator's Prometheus metrics (/metrics).
ENV_METRICS_PORT = "PRIVATEMODEL_METRICS_PORT"
DEFAULT_METRICS_PORT = 8081
# The namespace kopf watches (the liveness probe lists PrivateModels there); empty: all.
ENV_WATCH_NAMESPACE = "PRIVATEMODEL_WATCH_NAMESPACE"
DEFAULT_RUNTIME_IMAGE = "privatemodel/runtime:dev"
DEFAULT_IMAGE_PULL_POLICY = "IfNotPresent"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
DEFAULT_SERVICE_TYPE = "ClusterIP"
# Measured with the reference CNN (README, "Resources"): a player holds 0.5 GB once shared and up
# to 2.6 GB while it runs a batch of 64; serving 0.7 GB; the sharing Job (serving's settings) peaks
# at 0.55 GB. No CPU limit: SecureNN is latency-bound, and a throttled player stalls all three.
DEFAULT_PLAYER_RESOURCES = {"requests": {"cpu": "100m", "memory": "1Gi"}, "limits": {"memory": "4Gi"}}
DEFAULT_SERVING_RESOURCES = {"requests": {"cpu": "50m", "memory": "768Mi"}, "limits": {"memory": "1536Mi"}}
