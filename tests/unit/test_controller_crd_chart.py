"""The CRD and the Helm chart: in step with the operator's constants, rendered by the real helm."""
import json
import subprocess
from pathlib import Path

import pytest
import yaml

from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.consts import ConditionType, Phase
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import MAX_MODEL_NAME_LENGTH, MAX_SCALED_MODEL_NAME_LENGTH
from privatemodel.controller.reconcile import TRIPLE_MEMORY
from privatemodel.controller.spec import parse_spec
from privatemodel.controller.tls import Issuance

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds/privatemodels.yaml"
CHART = REPO / "charts/privatemodel"
HELM = REPO / "build/bin/helm"
CUSTOM_VALUES = Path(__file__).parent / "fixtures/chart-values-namespaced.yaml"
RELEASE_NAMESPACE = "privatemodel-system"
KUBE_VERSION = "1.20.2"  # the test cluster's


@pytest.fixture(scope="module")
def crd():
    return yaml.safe_load(CRD.read_text())


@pytest.fixture(scope="module")
def schema(crd):
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def test_chart_ships_the_same_crd():
    assert (CHART / "crds/privatemodels.yaml").read_bytes() == CRD.read_bytes()


def test_crd_names_match_the_constants(crd):
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["metadata"]["name"] == f"{consts.PLURAL}.{consts.GROUP}"
    assert crd["spec"]["group"] == consts.GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"], names["shortNames"]) == (consts.KIND, consts.PLURAL, ["pm"])
    (version,) = crd["spec"]["versions"]
    assert version["name"] == consts.VERSION and version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_printer_columns(crd):
    (version,) = crd["spec"]["versions"]
    columns = {column["name"]: column["jsonPath"] for column in version["additionalPrinterColumns"]}
    assert columns == {
        "Phase": ".status.phase",
        "Ready": ".status.readyPlayers",
        "Served": ".status.requestsServed",
        "Age": ".metadata.creationTimestamp",
    }


def test_status_vocabulary_matches_the_constants(schema):
    status = schema["properties"]["status"]["properties"]
    phases = {value for name, value in vars(Phase).items() if not name.startswith("_")}
    assert set(status["phase"]["enum"]) == phases
    condition = status["conditions"]["items"]["properties"]
    assert condition["status"]["enum"] == ["True", "False", "Unknown"]
    types = {value for name, value in vars(ConditionType).items() if not name.startswith("_")}
    assert all(t in condition["type"]["description"] for t in types)


def test_name_limit_and_protocol_default_match_the_operator(schema):
    assert schema["properties"]["metadata"]["properties"]["name"]["maxLength"] == MAX_MODEL_NAME_LENGTH
    protocol = schema["properties"]["spec"]["properties"]["protocol"]
    assert protocol["default"] == consts.PROTOCOL_SECURENN and protocol["enum"] == list(consts.PROTOCOLS)
    replicas = schema["properties"]["spec"]["properties"]["serving"]["properties"]["replicas"]
    assert (replicas["minimum"], replicas["maximum"]) == (1, consts.MAX_REPLICAS)
    assert f"{MAX_SCALED_MODEL_NAME_LENGTH} characters" in " ".join(replicas["description"].split())


# Every field the CRD declares, with a valid value: the operator must accept all of them.
EVERY_FIELD = {
    "protocol": "SecureNN",
    "inputShape": [1, 28, 28, 1],
    "outputShape": [1, 10],
    "model": {
        "pvc": {"claimName": "models", "path": "weights.h5"},
        "architecture": {"configMapKeyRef": {"name": "arch", "key": "model.json"}},
    },
    "serving": {
        "numRequests": 3,
        "replicas": 1,
        "image": "runtime:1",
        "resources": {"limits": {"memory": "2Gi"}, "requests": {"cpu": 1}},
        "nodeSelector": {"mpc": "yes"},
        "tolerations": [{"key": "mpc", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {}},
    },
    "players": {
        "image": "runtime:1",
        "resources": {"limits": {"memory": "2Gi"}},
        "nodeSelector": {"mpc": "yes"},
        "tolerations": [],
        "affinity": {},
    },
    "access": {"serviceType": "NodePort"},
}


def test_crd_fields_are_the_fields_the_operator_reads(schema):
    spec = schema["properties"]["spec"]
    assert set(spec["properties"]) == set(EVERY_FIELD)
    model = spec["properties"]["model"]["properties"]
    assert set(model) == {"secretKeyRef", "configMapKeyRef", "pvc", "architecture"}
    assert set(model["architecture"]["properties"]) == {"secretKeyRef", "configMapKeyRef", "pvc"}
    assert set(spec["properties"]["serving"]["properties"]) == set(EVERY_FIELD["serving"])
    assert set(spec["properties"]["players"]["properties"]) == set(EVERY_FIELD["players"])
    assert set(spec["properties"]["access"]["properties"]) == set(EVERY_FIELD["access"])
    assert spec["properties"]["access"]["properties"]["serviceType"]["enum"] == list(consts.SERVICE_TYPES)
    parse_spec(EVERY_FIELD)


def test_status_holds_what_the_operator_writes(schema):
    """Fields missing from a structural schema are pruned: status must declare each one."""
    status = schema["properties"]["status"]["properties"]
    assert set(status["access"]["properties"]) == {"configMap", *contract.ACCESS_KEYS} - {"ca"}
    assert set(status["tls"]["properties"]) == set(Issuance("i", "pem").to_status())
    triple = status["triples"]["items"]["properties"]
    assert set(triple) == {"triple", "readyPlayers", "requestsServed", "access", *TRIPLE_MEMORY}
    assert set(triple["access"]["properties"]) == set(status["access"]["properties"]) - {"configMap"}
    assert set(triple["tls"]["properties"]) == set(status["tls"]["properties"])


def test_model_sources_are_exactly_one_of(schema):
    model = schema["properties"]["spec"]["properties"]["model"]
    for node in (model, model["properties"]["architecture"]):
        assert node["oneOf"] == [{"required": [kind]} for kind in ("secretKeyRef", "configMapKeyRef", "pvc")]


def test_schema_is_structural(schema):
    """Every node has a type (or is int-or-string / free-form); oneOf branches only require."""

    def walk(node, path):
        if "oneOf" in node:
            assert all(set(branch) == {"required"} for branch in node["oneOf"]), path
        if node.get("x-kubernetes-int-or-string"):
            return
        assert "type" in node, f"{path}: no type"
        assert node.get("x-kubernetes-validations") is None, f"{path}: CEL needs Kubernetes 1.25+"
        for name, child in node.get("properties", {}).items():
            walk(child, f"{path}.{name}")
        if isinstance(node.get("additionalProperties"), dict):
            walk(node["additionalProperties"], f"{path}[*]")
        if "items" in node:
            walk(node["items"], f"{path}[]")

    walk(schema, "schema")


@pytest.fixture(scope="module")
def helm():
    if not (HELM.is_file() and HELM.stat().st_mode & 0o111):
        pytest.fail(f"helm is missing: expected an executable at {HELM} (the Makefile installs it there)")
    return str(HELM)


def run_helm(helm, *args, check=True):
    result = subprocess.run([helm, *args], capture_output=True, text=True)
    if check:
        assert result.returncode == 0, f"helm {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def render(helm, *args):
    result = run_helm(
        helm, "template", "pm", str(CHART), "--namespace", RELEASE_NAMESPACE, "--kube-version", KUBE_VERSION, *args
    )
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs):
    return {doc["kind"]: doc for doc in docs}


@pytest.mark.parametrize("values", [[], ["--values", str(CUSTOM_VALUES)]], ids=["defaults", "custom"])
def test_helm_lint_is_clean(helm, values):
    result = run_helm(helm, "lint", "--strict", str(CHART), *values)
    assert "[ERROR]" not in result.stdout and "[WARNING]" not in result.stdout, result.stdout


def test_chart_defaults_match_the_operator_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    image = values["runtime"]["image"]
    assert f"{image['repository']}:{image['tag']}" == consts.DEFAULT_RUNTIME_IMAGE
    assert image["pullPolicy"] == consts.DEFAULT_IMAGE_PULL_POLICY
    assert values["clusterDomain"] == consts.DEFAULT_CLUSTER_DOMAIN
    assert values["access"]["serviceType"] == consts.DEFAULT_SERVICE_TYPE
    assert values["runtime"]["allowedImages"] == []
    assert values["runtime"]["resources"] == {"players": consts.DEFAULT_PLAYER_RESOURCES,
                                              "serving": consts.DEFAULT_SERVING_RESOURCES}


def test_values_schema_offers_the_operators_service_types():
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["properties"]["access"]["properties"]["serviceType"]["enum"] == list(consts.SERVICE_TYPES)


def operator_container(docs):
    (container,) = by_kind(docs)["Deployment"]["spec"]["template"]["spec"]["containers"]
    return container


def test_render_defaults(helm):
    docs = render(helm)
    assert set(by_kind(docs)) == {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service"}
    for doc in docs:
        if doc["kind"] in ("ServiceAccount", "Deployment", "Service"):
            assert doc["metadata"]["namespace"] == RELEASE_NAMESPACE
    container = operator_container(docs)
    assert container["image"] == "privatemodel/operator:dev"
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["command"] == [
        "kopf", "run", "--standalone", "--module=privatemodel.controller.handlers",
        "--liveness=http://0.0.0.0:8080/healthz", "--all-namespaces",
    ]  # fmt: skip
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["ports"] == [{"name": "health", "containerPort": 8080, "protocol": "TCP"},
                                  {"name": "metrics", "containerPort": consts.DEFAULT_METRICS_PORT, "protocol": "TCP"}]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env == {
        consts.ENV_RUNTIME_IMAGE: consts.DEFAULT_RUNTIME_IMAGE,
        consts.ENV_IMAGE_PULL_POLICY: consts.DEFAULT_IMAGE_PULL_POLICY,
        consts.ENV_CLUSTER_DOMAIN: consts.DEFAULT_CLUSTER_DOMAIN,
        consts.ENV_SERVICE_TYPE: consts.DEFAULT_SERVICE_TYPE,
        consts.ENV_WATCH_NAMESPACE: "",  # all namespaces, as kopf's --all-namespaces
        consts.ENV_METRICS_PORT: str(consts.DEFAULT_METRICS_PORT),
        consts.ENV_SERVICE_MONITOR: "false",
        consts.ENV_SERVICE_MONITOR_LABELS: "{}",
        consts.ENV_ALLOWED_IMAGES: "",
        consts.ENV_PLAYER_RESOURCES: json.dumps(consts.DEFAULT_PLAYER_RESOURCES, sort_keys=True, separators=(",", ":")),
        consts.ENV_SERVING_RESOURCES: json.dumps(consts.DEFAULT_SERVING_RESOURCES, sort_keys=True, separators=(",", ":")),
    }
    # What the operator reads back is what the chart says.
    assert OperatorDefaults.from_env(env) == OperatorDefaults()
    binding = by_kind(docs)["ClusterRoleBinding"]
    service_account = {"kind": "ServiceAccount", "name": "pm-privatemodel", "namespace": RELEASE_NAMESPACE}
    assert binding["subjects"] == [service_account]


def test_render_custom_values_namespaced(helm):
    docs = render(helm, "--values", str(CUSTOM_VALUES))
    kinds = by_kind(docs)
    assert set(kinds) == {"ServiceAccount", "Role", "RoleBinding", "Deployment", "Service"}
    assert kinds["Role"]["metadata"]["namespace"] == "models"
    assert kinds["RoleBinding"]["metadata"]["namespace"] == "models"
    service_account = {"kind": "ServiceAccount", "name": "pm-operator", "namespace": RELEASE_NAMESPACE}
    assert kinds["RoleBinding"]["subjects"] == [service_account]
    container = operator_container(docs)
    assert container["image"] == "registry.example/privatemodel-operator:1.2.3"
    assert "--namespace=models" in container["command"] and "--all-namespaces" not in container["command"]
    assert "--verbose" in container["command"]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env[consts.ENV_RUNTIME_IMAGE] == "registry.example/privatemodel-runtime:1.2.3"
    assert env[consts.ENV_IMAGE_PULL_POLICY] == "Never"
    assert env[consts.ENV_CLUSTER_DOMAIN] == "example.internal"
    assert env[consts.ENV_SERVICE_TYPE] == "NodePort"
    assert env[consts.ENV_WATCH_NAMESPACE] == "models"
    defaults = OperatorDefaults.from_env(env)
    assert defaults.allowed_images == ("registry.example/privatemodel-runtime:1.2.4", "registry.example/team-a/*")
    assert defaults.player_resources == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "8Gi"}}
    # Helm merges maps: what the custom values leave out keeps the chart's default.
    assert defaults.serving_resources == {"requests": {"cpu": "50m", "memory": "1Gi"}, "limits": {"memory": "1536Mi"}}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "pm-operator"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}


def test_namespaced_mode_defaults_to_the_release_namespace(helm):
    kinds = by_kind(render(helm, "--set", "namespaced=true"))
    assert kinds["Role"]["metadata"]["namespace"] == RELEASE_NAMESPACE
    container = operator_container(list(kinds.values()))
    assert f"--namespace={RELEASE_NAMESPACE}" in container["command"]
    assert {"name": consts.ENV_WATCH_NAMESPACE, "value": RELEASE_NAMESPACE} in container["env"]


def test_the_health_port_is_set_once(helm):
    container = operator_container(render(helm, "--set", "operator.healthPort=9090"))
    assert "--liveness=http://0.0.0.0:9090/healthz" in container["command"]
    assert container["ports"][0]["containerPort"] == 9090


@pytest.mark.parametrize("value", ["runtime.image.pullPolicy=Sometimes", "access.serviceType=ExternalName"])
def test_values_schema_rejects_a_bad_enum(helm, value):
    result = run_helm(helm, "template", "pm", str(CHART), "--set", value, check=False)
    assert result.returncode != 0 and value.split("=")[0].split(".")[-1] in result.stderr


# What the operator does, and nothing more (see the comments in templates/rbac.yaml).
EXPECTED_RULES = {
    (consts.GROUP, "privatemodels"): {"get", "list", "watch", "patch"},
    (consts.GROUP, "privatemodels/status"): {"patch"},
    (consts.GROUP, "privatemodels/finalizers"): {"update"},
    ("apps", "statefulsets"): {"get", "list", "watch", "create", "patch", "delete"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("batch", "jobs"): {"get", "list", "watch", "create", "delete"},
    ("", "services"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "configmaps"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "pods"): {"get", "list", "watch"},
    # Each party's TLS Secret, written once; never read, listed or deleted.
    ("", "secrets"): {"create"},
    ("networking.k8s.io", "networkpolicies"): {"get", "list", "watch", "create", "patch", "delete"},
    ("policy", "poddisruptionbudgets"): {"get", "list", "watch", "create", "patch", "delete"},
    # Posted on PrivateModels; listed for a sharing pod that cannot mount the model.
    ("", "events"): {"create", "list"},
}


@pytest.mark.parametrize("values", [[], ["--values", str(CUSTOM_VALUES)]], ids=["cluster", "namespaced"])
def test_rbac_is_least_privilege(helm, values):
    docs = render(helm, *values)
    (role,) = [doc for doc in docs if doc["kind"] in ("Role", "ClusterRole")]
    granted = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames, no nonResourceURLs
        for field in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[field], f"wildcard in {field}: {rule}"
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                granted.setdefault((group, resource), set()).update(rule["verbs"])
    assert granted == EXPECTED_RULES


def test_monitoring_scrapes_the_operators_metrics_and_alerts_have_runbooks(helm):
    from prometheus_client import REGISTRY

    import privatemodel.controller.metrics  # noqa: F401 - registers the metrics
    from privatemodel.runtime.serving.metrics import ServingMetrics

    docs = render(helm, "--set", "metrics.serviceMonitor.enabled=true", "--set", "metrics.prometheusRule.enabled=true",
                  "--set", "metrics.dashboard.enabled=true", "--set", "metrics.serviceMonitor.labels.release=prom")
    kinds = by_kind(docs)
    # The operator makes one for each model's serving, labelled the same, with the right to.
    defaults = OperatorDefaults.from_env({e["name"]: e["value"] for e in operator_container(docs)["env"]})
    assert defaults.service_monitor and defaults.service_monitor_labels == {"release": "prom"}
    assert {"apiGroups": ["monitoring.coreos.com"], "resources": ["servicemonitors"],
            "verbs": ["get", "list", "create", "patch", "delete"]} in kinds["ClusterRole"]["rules"]
    service, monitor = kinds["Service"], kinds["ServiceMonitor"]
    deployment = kinds["Deployment"]
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [p["name"] for p in service["spec"]["ports"]]
    assert service["spec"]["ports"][0]["targetPort"] in {p["name"] for p in operator_container(docs)["ports"]}

    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",)}
    serving = ServingMetrics(queue_depth=lambda: 0).registry
    known = {metric.name + suffix for registry in (REGISTRY, serving) for metric in registry.collect()
             for suffix in suffixes.get(metric.type, ())}
    known.add("up")
    runbook = (REPO / "docs/runbook.md").read_text()
    rules = kinds["PrometheusRule"]["spec"]["groups"][0]["rules"]
    assert len(rules) >= 5
    for rule in rules:
        assert f"## {rule['alert']}\n" in runbook, rule["alert"]
        assert rule["annotations"]["runbook"] == f"docs/runbook.md#{rule['alert'].lower()}"
        assert metric_names(rule["expr"]) <= known, rule["expr"]
    dashboard = json.loads(kinds["ConfigMap"]["data"]["privatemodel.json"])
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            assert metric_names(target["expr"]) <= known, target["expr"]


def metric_names(expr):
    """The metric names a PromQL expression reads (identifiers before { or [ that are not functions)."""
    import re

    return {name for name in re.findall(r"([a-z_][a-z0-9_]*)\s*[{\[]", expr)
            if name not in ("rate", "increase", "sum", "absent", "histogram_quantile", "by", "max")}
