"""Every fact the operator's code shares with the CRD, the chart and the runtime image, once.

crds/privatemodels.yaml and the chart repeat some of these (YAML cannot import Python);
tests/unit/test_controller_crd_chart.py checks that the copies agree.
"""

# The custom resource.
GROUP = "ml.privatemodel.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "PrivateModel"
PLURAL = "privatemodels"

# Children carry these (prefixed, so they never collide with users' labels).
LABEL_MODEL = f"{GROUP}/model"
LABEL_COMPONENT = f"{GROUP}/component"
# Client pods carry `<LABEL_CLIENT_OF>: <model>` to be let through to that model's players.
LABEL_CLIENT_OF = f"{GROUP}/client-of"
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

    PLAYERS = "players"  # headless Service + StatefulSet
    HOSTMAP = "hostmap"  # ConfigMap read by every runtime pod
    SHARING = "sharing"  # the Job that secret-shares the model
    SERVING = "serving"  # Deployment + ClusterIP Service


class Phase:
    PENDING = "Pending"
    SHARING = "Sharing"
    SERVING = "Serving"
    COMPLETED = "Completed"
    FAILED = "Failed"


class ConditionType:
    PLAYERS_READY = "PlayersReady"
    WEIGHTS_SHARED = "WeightsShared"
    SERVING = "Serving"
    READY = "Ready"  # rollup of the three above, computed by conditions.rollup


class Reason:
    # PlayersReady
    PLAYERS_STARTING = "PlayersStarting"
    PLAYERS_READY = "PlayersReady"
    # WeightsShared
    WAITING_FOR_PLAYERS = "WaitingForPlayers"
    SHARING_IN_PROGRESS = "SharingInProgress"
    SHARED = "Shared"
    SHARING_FAILED = "SharingFailed"
    SHARES_LOST = "SharesLost"  # a player pod that held a share was replaced
    # Serving
    WAITING_FOR_SHARES = "WaitingForShares"
    SERVING_STARTING = "ServingStarting"
    SERVING_READY = "ServingReady"
    REQUESTS_COMPLETED = "RequestsCompleted"
    # Ready (otherwise it takes the reason of the sub-condition that holds it back)
    READY = "Ready"
    INVALID_SPEC = "InvalidSpec"
    INITIALIZING = "Initializing"  # a sub-condition has not been set yet


# Reasons that need the user to act (fix the source, edit the spec, delete the failed Job).
FAILURE_REASONS = frozenset({Reason.SHARING_FAILED})

PROTOCOL_SECURENN = "SecureNN"
PROTOCOLS = (PROTOCOL_SECURENN,)

# SecureNN's three players; index i runs as `server<i>` (the runtime CLI's player names).
PLAYER_COUNT = 3
PLAYER_NAME_PREFIX = "server"

PLAYER_PORT = 4440  # TF gRPC, the same on every player
SERVING_PORT = 8080
SERVING_READY_PATH = "/healthz"
SERVING_STATUS_PATH = "/status"

# Paths inside runtime containers.
CONFIG_DIR = "/etc/privatemodel"
HOSTMAP_FILE = "hostmap.json"
HOSTMAP_PATH = f"{CONFIG_DIR}/{HOSTMAP_FILE}"
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
# The namespace kopf watches (the liveness probe lists PrivateModels there); empty: all.
ENV_WATCH_NAMESPACE = "PRIVATEMODEL_WATCH_NAMESPACE"
DEFAULT_RUNTIME_IMAGE = "privatemodel/runtime:dev"
DEFAULT_IMAGE_PULL_POLICY = "IfNotPresent"
DEFAULT_CLUSTER_DOMAIN = "cluster.local"
