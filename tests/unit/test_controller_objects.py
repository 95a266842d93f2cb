"""The pure builders: every child of a PrivateModel, rendered from a plain dict spec."""
import json
import os
import subprocess

import pytest

from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import child_name, player_name, selector_labels, serving_url
from privatemodel.controller.objects.players import (
    build_hostmap_config_map,
    build_players_network_policy,
    build_players_service,
    build_players_stateful_set,
)
from privatemodel.controller.objects.serving import build_serving_deployment, build_serving_service
from privatemodel.controller.objects.sharing import build_sharing_job, sharing_digest
from privatemodel.controller.spec import parse_spec

NAMESPACE = "models"
MODEL = "mnist"
UIDS = ["uid-0", "uid-1", "uid-2"]
DIGEST = "0123456789"
DEFAULTS = OperatorDefaults()

MNIST = {
    "inputShape": [1, 28, 28, 1],
    "outputShape": [1, 10],
    "model": {"secretKeyRef": {"name": "mnist-model", "key": "model.h5"}},
    "serving": {"numRequests": 3},
}


def build_all(body=MNIST, defaults=DEFAULTS, uids=UIDS):
    spec = parse_spec(body)
    return {
        "hostmap": build_hostmap_config_map(spec, MODEL, NAMESPACE, defaults),
        "players_service": build_players_service(spec, MODEL, NAMESPACE, defaults),
        "players": build_players_stateful_set(spec, MODEL, NAMESPACE, defaults),
        "players_policy": build_players_network_policy(spec, MODEL, NAMESPACE, defaults),
        "sharing": build_sharing_job(spec, MODEL, NAMESPACE, defaults, uids),
        "serving": build_serving_deployment(spec, MODEL, NAMESPACE, defaults, DIGEST),
        "serving_service": build_serving_service(spec, MODEL, NAMESPACE, defaults),
    }


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def only_container(obj):
    (container,) = pod_spec(obj)["containers"]
    return container


def named_port(container, name):
    return next(port["containerPort"] for port in container["ports"] if port["name"] == name)


def assert_plain_json(value, path="object"):
    """Only what the API client sends as is: no tuples, no custom types."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), path
            assert_plain_json(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            assert_plain_json(item, f"{path}[{index}]")
    else:
        assert value is None or type(value) in (str, int, bool, float), f"{path}: {type(value).__name__}"


def test_names_follow_the_model():
    objects = build_all()
    digest = sharing_digest(parse_spec(MNIST), UIDS)
    assert {key: obj["metadata"]["name"] for key, obj in objects.items()} == {
        "hostmap": "mnist-hostmap",
        "players_service": "mnist-players",
        "players": "mnist-players",
        "players_policy": "mnist-players",
        "sharing": f"mnist-sharing-{digest}",
        "serving": "mnist-serving",
        "serving_service": "mnist-serving",
    }
    assert len(digest) == consts.SHARING_DIGEST_LENGTH and int(digest, 16) >= 0


def test_metadata_is_owner_agnostic_and_labelled():
    for key, obj in build_all().items():
        meta = obj["metadata"]
        assert meta["namespace"] == NAMESPACE, key
        assert "ownerReferences" not in meta, key  # handlers adopt
        assert meta["labels"][consts.LABEL_MODEL] == MODEL, key
        assert meta["labels"]["app.kubernetes.io/managed-by"] == consts.MANAGED_BY, key
        assert_plain_json(obj, key)


def test_no_two_parts_of_a_child_are_one_object():
    """kopf.adopt adds labels to a child's metadata: that must never reach its pod template."""
    for key, obj in build_all().items():
        assert shared_parts(obj, seen=set()) == [], key


def shared_parts(value, seen):
    if not isinstance(value, (dict, list)):
        return []
    if id(value) in seen:
        return [value]
    seen.add(id(value))
    items = value.values() if isinstance(value, dict) else value
    return [part for item in items for part in shared_parts(item, seen)]


def test_selectors_pick_their_own_pods():
    objects = build_all()
    for workload, service, component in [
        ("players", "players_service", Component.PLAYERS),
        ("serving", "serving_service", Component.SERVING),
    ]:
        pod_labels = objects[workload]["spec"]["template"]["metadata"]["labels"]
        selector = objects[workload]["spec"]["selector"]["matchLabels"]
        assert selector == {consts.LABEL_MODEL: MODEL, consts.LABEL_COMPONENT: component}
        assert selector.items() <= pod_labels.items()
        assert objects[service]["spec"]["selector"] == selector
    job_pod_labels = objects["sharing"]["spec"]["template"]["metadata"]["labels"]
    assert job_pod_labels[consts.LABEL_COMPONENT] == Component.SHARING


@pytest.mark.parametrize("key", ["players", "sharing", "serving"])
def test_runtime_pods_are_locked_down(key):
    obj = build_all()[key]
    pod = pod_spec(obj)
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = only_container(obj)
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in context
    # The read-only root filesystem leaves /tmp writable, and HOME points there.
    assert {"name": "tmp", "mountPath": consts.TMP_DIR} in container["volumeMounts"]
    assert {"name": "HOME", "value": consts.TMP_DIR} in container["env"]
    assert {"name": "hostmap", "mountPath": consts.CONFIG_DIR, "readOnly": True} in container["volumeMounts"]


@pytest.mark.parametrize(
    "model",
    [
        {"secretKeyRef": {"name": "mnist-model", "key": "model.h5"}},
        {"configMapKeyRef": {"name": "mnist-model", "key": "model.h5"}},
        {"pvc": {"claimName": "models", "path": "mnist/model.h5"}},
    ],
)
def test_only_the_sharing_job_mounts_the_model(model):
    objects = build_all({**MNIST, "model": model})
    hostmap_volume = {"name": "hostmap", "configMap": {"name": "mnist-hostmap"}}
    for key in ("players", "serving"):
        for volume in pod_spec(objects[key])["volumes"]:
            assert volume == hostmap_volume or set(volume) == {"name", "emptyDir"}, (key, volume)
    job_volumes = {volume["name"]: volume for volume in pod_spec(objects["sharing"])["volumes"]}
    source = job_volumes["model"]
    if "secretKeyRef" in model:
        assert source["secret"]["secretName"] == "mnist-model"
        assert source["secret"]["items"] == [{"key": "model.h5", "path": "model.h5"}]
    elif "configMapKeyRef" in model:
        assert source["configMap"]["name"] == "mnist-model"
        assert source["configMap"]["items"] == [{"key": "model.h5", "path": "model.h5"}]
    else:
        assert source["persistentVolumeClaim"] == {"claimName": "models", "readOnly": True}
    command = only_container(objects["sharing"])["command"]
    model_file = f"{consts.MODEL_DIR}/{model.get('pvc', {}).get('path', 'model.h5')}"
    assert command[command.index("--model") + 1] == model_file
    assert {"name": "model", "mountPath": consts.MODEL_DIR, "readOnly": True} in only_container(objects["sharing"])[
        "volumeMounts"
    ]


def test_hostmap_names_the_statefulset_pods():
    objects = build_all()
    hostmap = json.loads(objects["hostmap"]["data"][consts.HOSTMAP_FILE])
    assert list(hostmap) == ["server0", "server1", "server2"]
    statefulset = objects["players"]
    service = objects["players_service"]
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    assert statefulset["spec"]["replicas"] == consts.PLAYER_COUNT
    for index, (name, address) in enumerate(hostmap.items()):
        pod = f"{statefulset['metadata']['name']}-{index}"
        assert address == f"{pod}.{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{consts.PLAYER_PORT}"
        assert name == player_name(index)


def test_hostmap_is_one_the_runtime_accepts():
    from privatemodel.runtime.mpc import hostmap as runtime_hostmap

    data = build_all()["hostmap"]["data"][consts.HOSTMAP_FILE]
    runtime_hostmap.validate(json.loads(data))
    assert tuple(player_name(i) for i in range(consts.PLAYER_COUNT)) == runtime_hostmap.PLAYER_NAMES


def test_hostmap_uses_the_cluster_domain():
    objects = build_all(defaults=OperatorDefaults(cluster_domain="example.internal"))
    hostmap = json.loads(objects["hostmap"]["data"][consts.HOSTMAP_FILE])
    assert hostmap["server2"] == f"mnist-players-2.mnist-players.{NAMESPACE}.svc.example.internal:4440"


def test_players_service_is_headless_and_publishes_starting_pods():
    spec = build_all()["players_service"]["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["publishNotReadyAddresses"] is True
    assert [port["port"] for port in spec["ports"]] == [consts.PLAYER_PORT]


def test_players_listen_and_report_ready_on_the_player_port():
    statefulset = build_all()["players"]
    container = only_container(statefulset)
    probe_port = container["readinessProbe"]["tcpSocket"]["port"]
    assert named_port(container, probe_port) == consts.PLAYER_PORT
    assert {"name": "state", "mountPath": consts.STATE_DIR} in container["volumeMounts"]
    assert {"name": "state", "emptyDir": {}} in pod_spec(statefulset)["volumes"]
    assert "volumeClaimTemplates" not in statefulset["spec"]


@pytest.mark.parametrize("ordinal", [0, 1, 2])
def test_each_player_pod_plays_the_server_of_its_ordinal(ordinal):
    container = only_container(build_all()["players"])
    shell, flag, script = container["command"]
    assert (shell, flag) == ("/bin/sh", "-c")
    assert {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}} in container["env"]
    # Run the real shell line with `echo` in place of the runtime.
    echo = script.replace(f"exec {consts.RUNTIME_COMMAND} ", "echo ", 1)
    result = subprocess.run(
        ["/bin/sh", "-c", echo],
        env={**os.environ, "POD_NAME": f"mnist-players-{ordinal}"},
        capture_output=True,
        text=True,
        check=True,
    )
    expected = f"player server{ordinal} --config {consts.HOSTMAP_PATH} --state-dir {consts.STATE_DIR}"
    assert result.stdout.split() == expected.split()


def test_players_prefer_separate_nodes():
    affinity = pod_spec(build_all()["players"])["affinity"]
    (term,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == {
        consts.LABEL_MODEL: MODEL,
        consts.LABEL_COMPONENT: Component.PLAYERS,
    }


def test_user_affinity_is_kept():
    node_affinity = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
    objects = build_all({**MNIST, "players": {"affinity": {"nodeAffinity": node_affinity}}})
    affinity = pod_spec(objects["players"])["affinity"]
    assert affinity["nodeAffinity"] == node_affinity and "podAntiAffinity" in affinity

    own = {"requiredDuringSchedulingIgnoredDuringExecution": []}
    objects = build_all({**MNIST, "players": {"affinity": {"podAntiAffinity": own}}})
    assert pod_spec(objects["players"])["affinity"] == {"podAntiAffinity": own}


def test_scheduling_and_resources_pass_through_as_copies():
    settings = {
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        "nodeSelector": {"mpc": "yes"},
        "tolerations": [{"key": "mpc", "operator": "Exists"}],
    }
    body = {**MNIST, "players": settings, "serving": {**settings, "numRequests": 3}}
    spec = parse_spec(body)
    statefulset = build_players_stateful_set(spec, MODEL, NAMESPACE, DEFAULTS)
    for obj in (statefulset, build_all(body)["serving"], build_all(body)["sharing"]):
        assert only_container(obj)["resources"] == settings["resources"]
        assert pod_spec(obj)["nodeSelector"] == settings["nodeSelector"]
        assert pod_spec(obj)["tolerations"] == settings["tolerations"]
    only_container(statefulset)["resources"]["requests"]["cpu"] = "9"
    pod_spec(statefulset)["tolerations"][0]["key"] = "changed"
    assert spec.players.resources["requests"]["cpu"] == "500m"
    assert spec.players.tolerations[0]["key"] == "mpc"


def test_unset_scheduling_is_left_out():
    objects = build_all()
    for key in ("sharing", "serving"):
        assert {"nodeSelector", "tolerations", "affinity"}.isdisjoint(pod_spec(objects[key])), key
    assert only_container(objects["serving"])["resources"] == {}


def test_images_come_from_the_spec_or_the_defaults():
    defaults = OperatorDefaults(runtime_image="registry.example/runtime:1.0", image_pull_policy="Never")
    objects = build_all(defaults=defaults)
    for key in ("players", "sharing", "serving"):
        assert only_container(objects[key])["image"] == "registry.example/runtime:1.0"
        assert only_container(objects[key])["imagePullPolicy"] == "Never"

    body = {**MNIST, "players": {"image": "players:2"}, "serving": {"image": "serving:2"}}
    objects = build_all(body, defaults=defaults)
    assert only_container(objects["players"])["image"] == "players:2"
    # The sharing Job drives the players as serving does, with serving's image.
    assert only_container(objects["sharing"])["image"] == "serving:2"
    assert only_container(objects["serving"])["image"] == "serving:2"


def test_sharing_job_command_and_failure_reporting():
    job = build_all()["sharing"]
    container = only_container(job)
    assert container["command"] == [
        "privatemodel", "share",
        "--model", "/model/model.h5",
        "--config", consts.HOSTMAP_PATH,
        "--input-shape", "1,28,28,1",
        "--output-shape", "1,10",
        "--error-file", "/dev/termination-log",
    ]  # fmt: skip
    assert container["terminationMessagePath"] == "/dev/termination-log"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert 0 < job["spec"]["backoffLimit"] <= 3
    assert "ttlSecondsAfterFinished" not in job["spec"]  # alpha on Kubernetes 1.20
    assert "completionMode" not in job["spec"]  # no indexed Jobs on 1.20


def test_sharing_job_records_its_digest_and_player_pods():
    job = build_all()["sharing"]
    digest = sharing_digest(parse_spec(MNIST), UIDS)
    assert job["metadata"]["name"] == child_name(MODEL, Component.SHARING, digest)
    assert job["metadata"]["labels"][consts.LABEL_SHARING_DIGEST] == digest
    assert json.loads(job["metadata"]["annotations"][consts.ANNOTATION_PLAYER_UIDS]) == UIDS


def test_sharing_digest_follows_what_the_shares_depend_on():
    base = parse_spec(MNIST)
    digest = sharing_digest(base, UIDS)
    assert sharing_digest(parse_spec(MNIST), list(UIDS)) == digest
    # A replaced player pod lost its share.
    assert sharing_digest(base, ["uid-0", "uid-1", "uid-2b"]) != digest
    new_source = {**MNIST, "model": {"secretKeyRef": {"name": "mnist-model-v2", "key": "model.h5"}}}
    assert sharing_digest(parse_spec(new_source), UIDS) != digest
    assert sharing_digest(parse_spec({**MNIST, "inputShape": [1, 28, 28, 3]}), UIDS) != digest
    # Serving-only edits keep the shares.
    serving_edit = {**MNIST, "serving": {"numRequests": 10, "resources": {"limits": {"cpu": "2"}}, "image": "x:1"}}
    assert sharing_digest(parse_spec(serving_edit), UIDS) == digest
    with pytest.raises(ValueError, match="3 player pod UIDs"):
        sharing_digest(base, UIDS[:2])


def test_weights_only_model_mounts_its_architecture():
    body = {
        **MNIST,
        "model": {
            "secretKeyRef": {"name": "mnist-model", "key": "weights.h5"},
            "architecture": {"configMapKeyRef": {"name": "mnist-arch", "key": "model.json"}},
        },
    }
    job = build_all(body)["sharing"]
    command = only_container(job)["command"]
    assert command[command.index("--architecture") + 1] == f"{consts.ARCHITECTURE_DIR}/model.json"
    volumes = {volume["name"]: volume for volume in pod_spec(job)["volumes"]}
    assert volumes["architecture"]["configMap"]["name"] == "mnist-arch"
    assert {"name": "architecture", "mountPath": consts.ARCHITECTURE_DIR, "readOnly": True} in only_container(job)[
        "volumeMounts"
    ]


def test_model_and_architecture_on_one_claim_share_a_volume():
    body = {
        **MNIST,
        "model": {
            "pvc": {"claimName": "models", "path": "weights.h5"},
            "architecture": {"pvc": {"claimName": "models", "path": "model.json"}},
        },
    }
    job = build_all(body)["sharing"]
    claims = [v for v in pod_spec(job)["volumes"] if "persistentVolumeClaim" in v]
    assert [v["name"] for v in claims] == ["model"]
    mounts = [m for m in only_container(job)["volumeMounts"] if m["name"] == "model"]
    assert [m["mountPath"] for m in mounts] == [consts.MODEL_DIR, consts.ARCHITECTURE_DIR]
    command = only_container(job)["command"]
    assert command[command.index("--architecture") + 1] == f"{consts.ARCHITECTURE_DIR}/model.json"


def test_serving_passes_num_requests_only_when_set():
    command = only_container(build_all()["serving"])["command"]
    assert command == [
        "privatemodel", "serve", "--config", consts.HOSTMAP_PATH, "--port", "8080",
        "--num-requests", "3", "--wait-after-complete",
    ]  # fmt: skip
    unlimited = only_container(build_all({**MNIST, "serving": {}})["serving"])["command"]
    assert unlimited == ["privatemodel", "serve", "--config", consts.HOSTMAP_PATH, "--port", "8080"]


def test_serving_deployment_and_service():
    objects = build_all()
    deployment = objects["serving"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"] == {consts.ANNOTATION_SHARED_DIGEST: DIGEST}
    container = only_container(deployment)
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and named_port(container, probe["port"]) == consts.SERVING_PORT
    service = objects["serving_service"]["spec"]
    assert service["type"] == "ClusterIP"
    assert [(p["port"], p["targetPort"]) for p in service["ports"]] == [(consts.SERVING_PORT, probe["port"])]
    assert serving_url(MODEL, NAMESPACE, "cluster.local") == f"http://mnist-serving.{NAMESPACE}.svc.cluster.local:8080"


def test_model_selector_finds_every_child():
    model_selector = selector_labels(MODEL)
    assert model_selector == {consts.LABEL_MODEL: MODEL}
    for key, obj in build_all().items():
        assert model_selector.items() <= obj["metadata"]["labels"].items(), key


def test_only_the_models_pods_and_its_clients_reach_the_players():
    policy = build_all()["players_policy"]["spec"]
    assert policy["podSelector"]["matchLabels"] == selector_labels(MODEL, Component.PLAYERS)
    assert policy["policyTypes"] == ["Ingress"]
    (rule,) = policy["ingress"]
    assert rule["ports"] == [{"port": consts.PLAYER_PORT, "protocol": "TCP"}]
    allowed = [peer["podSelector"]["matchLabels"] for peer in rule["from"]]
    assert allowed == [{consts.LABEL_MODEL: MODEL}, {consts.LABEL_CLIENT_OF: MODEL}]
    # Every pod that drives the players carries the model label the policy admits.
    for key in ("players", "sharing", "serving"):
        assert build_all()[key]["spec"]["template"]["metadata"]["labels"][consts.LABEL_MODEL] == MODEL
