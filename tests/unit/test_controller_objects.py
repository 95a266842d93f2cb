"""The pure builders: every child of a PrivateModel, rendered from a plain dict spec."""
import json

import pytest

from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.consts import Component
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel.controller.naming import Triple, child_name, player_pod, selector_labels
from privatemodel.controller.objects.mesh import (
    build_hostmap_config_map,
    build_mesh_service,
    build_network_policies,
)
from privatemodel.controller.objects.players import (
    build_ingress_service,
    build_players_disruption_budget,
    build_player_stateful_set,
    build_players_service,
)
from privatemodel.controller.objects.serving import (
    build_serving_deployment,
    build_serving_service,
    build_serving_service_monitor,
)
from privatemodel.controller.objects.sharing import build_sharing_job, sharing_digest
from privatemodel.controller.objects.tls import build_access_config_map, build_tls_secret
from privatemodel.controller.spec import parse_spec
from privatemodel.controller.tls import Issuance

NAMESPACE = "models"
MODEL = "mnist"
UIDS = ["uid-0", "uid-1", "uid-2"]
DIGEST = "0123456789"
DEFAULTS = OperatorDefaults()
ISSUANCE = Issuance(issuer="abcd1234", ca_certificate="-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n")
PLAYERS = contract.PLAYER_NAMES
RUNTIME_PODS = (*PLAYERS, "sharing", "serving")
# Which party each runtime workload plays.
PARTY_OF = {**{player: player for player in PLAYERS}, "sharing": consts.SHARING_PARTY, "serving": consts.SERVING_PARTY}

MNIST = {
    "inputShape": [1, 28, 28, 1],
    "outputShape": [1, 10],
    "model": {"secretKeyRef": {"name": "mnist-model", "key": "model.h5"}},
    "serving": {"numRequests": 3},
}


def build_all(body=MNIST, defaults=DEFAULTS, uids=UIDS, triple=0, issuance=ISSUANCE):
    """Every child of one triple (and the model-wide ones: access, disruption budget)."""
    spec = parse_spec(body)
    build = (spec, MODEL, NAMESPACE, defaults)
    objects = {
        "hostmap": build_hostmap_config_map(*build, triple),
        "access": build_access_config_map(*build, [ISSUANCE]),
        "players_service": build_players_service(*build, triple),
        "sharing": build_sharing_job(*build, uids, issuance, triple),
        "serving": build_serving_deployment(*build, DIGEST, issuance, triple),
        "serving_service": build_serving_service(*build, triple),
    }
    for player in PLAYERS:
        objects[player] = build_player_stateful_set(*build, player, issuance, triple)
    for player in contract.SHARE_HOLDERS:
        objects[f"ingress_{player}"] = build_ingress_service(*build, player, triple)
    for controller in contract.CONTROLLER_NAMES:
        objects[f"mesh_{controller}"] = build_mesh_service(*build, controller, triple)
    for policy in build_network_policies(*build, triple):
        objects[f"policy_{policy['metadata']['labels'][consts.LABEL_COMPONENT]}"] = policy
    objects["disruption_budget"] = build_players_disruption_budget(*build, "policy/v1")
    for party in contract.PARTY_NAMES:
        objects[f"tls_{party}"] = build_tls_secret(MODEL, NAMESPACE, issuance, party, f"key of {party}",
                                                   f"cert of {party}", triple)
    return objects


def pod_spec(obj):
    return obj["spec"]["template"]["spec"]


def pod_labels(obj):
    return obj["spec"]["template"]["metadata"]["labels"]


def only_container(obj):
    (container,) = pod_spec(obj)["containers"]
    return container


def named_port(container, name):
    return next(port["containerPort"] for port in container["ports"] if port["name"] == name)


def matches(selector, labels):
    return selector.items() <= labels.items()


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
        "access": "mnist-access",
        "players_service": "mnist-players",
        "server0": "mnist-server0",
        "server1": "mnist-server1",
        "server2": "mnist-server2",
        "ingress_server0": "mnist-ingress-server0",
        "ingress_server1": "mnist-ingress-server1",
        "mesh_share": "mnist-mesh-share",
        "mesh_serve": "mnist-mesh-serve",
        "policy_players": "mnist-players",
        "policy_sharing": "mnist-sharing",
        "policy_serving": "mnist-serving",
        "disruption_budget": "mnist-players",
        "sharing": f"mnist-sharing-{digest}",
        "serving": "mnist-serving",
        "serving_service": "mnist-serving",
        **{f"tls_{party}": f"mnist-tls-{party}-abcd1234" for party in contract.PARTY_NAMES},
    }
    assert len(digest) == consts.SHARING_DIGEST_LENGTH and int(digest, 16) >= 0


def test_metadata_is_owner_agnostic_and_labelled():
    model_selector = selector_labels(MODEL)
    for key, obj in build_all().items():
        meta = obj["metadata"]
        assert meta["namespace"] == NAMESPACE, key
        assert "ownerReferences" not in meta, key  # handlers adopt
        assert matches(model_selector, meta["labels"]), key  # what teardown and the e2e find
        assert meta["labels"]["app.kubernetes.io/managed-by"] == consts.MANAGED_BY, key
        assert_plain_json(obj, key)


def test_a_node_drain_evicts_one_player_at_a_time():
    budget = build_all()["disruption_budget"]
    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"]["maxUnavailable"] == 1
    selected = [key for key, obj in build_all().items() if "template" in obj.get("spec", {})
                and matches(budget["spec"]["selector"]["matchLabels"], pod_labels(obj))]
    assert sorted(selected) == sorted(PLAYERS)


def test_servings_service_monitor_trusts_only_the_models_ca():
    defaults = OperatorDefaults(service_monitor=True, service_monitor_labels={"release": "prom"})
    spec = parse_spec(MNIST)
    monitor = build_serving_service_monitor(spec, MODEL, NAMESPACE, defaults)
    service = build_serving_service(spec, MODEL, NAMESPACE, defaults)
    access_map = build_access_config_map(spec, MODEL, NAMESPACE, defaults, [ISSUANCE])
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {port["name"] for port in service["spec"]["ports"]}
    assert (endpoint["scheme"], endpoint["path"]) == ("https", "/metrics")
    ca = endpoint["tlsConfig"]["ca"]["configMap"]
    assert ca["name"] == access_map["metadata"]["name"] and ca["key"] in access_map["data"]
    assert endpoint["tlsConfig"]["serverName"] == consts.SERVING_PARTY


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


def test_each_workload_selects_only_its_own_pods():
    objects = build_all()
    workloads = [*PLAYERS, "serving"]
    for key in workloads:
        selector = objects[key]["spec"]["selector"]["matchLabels"]
        assert matches(selector, pod_labels(objects[key])), key
        others = [other for other in (*workloads, "sharing") if other != key]
        assert not any(matches(selector, pod_labels(objects[other])) for other in others), key
    assert pod_labels(objects["sharing"])[consts.LABEL_COMPONENT] == Component.SHARING


def test_services_select_the_pods_they_name():
    objects = build_all()
    selected = {
        "players_service": list(PLAYERS),
        "ingress_server0": ["server0"],
        "ingress_server1": ["server1"],
        "mesh_share": ["sharing"],
        "mesh_serve": ["serving"],
        "serving_service": ["serving"],
    }
    for service, expected in selected.items():
        selector = objects[service]["spec"]["selector"]
        assert [key for key in RUNTIME_PODS if matches(selector, pod_labels(objects[key]))] == expected, service
        for port in objects[service]["spec"]["ports"]:
            for key in expected:
                assert named_port(only_container(objects[key]), port["targetPort"]) == port["port"], (service, key)


@pytest.mark.parametrize("key", RUNTIME_PODS)
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
    assert {"name": "config", "mountPath": consts.CONFIG_DIR, "readOnly": True} in container["volumeMounts"]
    # Every party listens on the mesh port, and only there for its peers.
    assert named_port(container, "mesh") == contract.MESH_PORT
    assert not {port["containerPort"] for port in container["ports"]} & set(contract.MESH_TF_PORTS.values())


@pytest.mark.parametrize("key", RUNTIME_PODS)
def test_each_pod_mounts_only_its_own_partys_secret(key):
    objects = build_all()
    volumes = {volume["name"]: volume for volume in pod_spec(objects[key])["volumes"]}
    sources = volumes["config"]["projected"]["sources"]
    secrets = [source["secret"] for source in sources if "secret" in source]
    assert secrets == [{
        "name": objects[f"tls_{PARTY_OF[key]}"]["metadata"]["name"],
        "items": [{"key": name, "path": f"tls/{name}"} for name in (contract.TLS_CA, contract.TLS_CERT, contract.TLS_KEY)],
    }]
    assert [source["configMap"]["name"] for source in sources if "configMap" in source] == ["mnist-hostmap"]
    # Owner-only through the pod's fsGroup; the files stay root's.
    assert volumes["config"]["projected"]["defaultMode"] == 0o440
    command = only_container(objects[key])["command"]
    assert command[command.index("--tls-dir") + 1] == consts.TLS_DIR == f"{consts.CONFIG_DIR}/tls"
    assert command[command.index("--config") + 1] == consts.HOSTMAP_PATH
    # No other Secret anywhere in the pod, except the sharing Job's model.
    others = [v for v in volumes.values() if "secret" in v]
    assert others == ([volumes["model"]] if key == "sharing" else [])


def test_tls_secrets_have_the_layout_of_a_tls_dir():
    objects = build_all()
    for party in contract.PARTY_NAMES:
        secret = objects[f"tls_{party}"]
        assert secret["type"] == "kubernetes.io/tls"
        assert secret["stringData"] == {
            contract.TLS_CA: ISSUANCE.ca_certificate, contract.TLS_CERT: f"cert of {party}",
            contract.TLS_KEY: f"key of {party}",
        }
        assert secret["metadata"]["labels"][consts.LABEL_COMPONENT] == Component.TLS


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
    for key in (*PLAYERS, "serving"):
        for volume in pod_spec(objects[key])["volumes"]:
            assert set(volume) in ({"name", "projected"}, {"name", "emptyDir"}), (key, volume)
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


def test_hostmap_tunnels_on_loopback_and_names_every_partys_mesh_address():
    objects = build_all()
    hostmap = json.loads(objects["hostmap"]["data"][consts.HOSTMAP_FILE])
    assert {party: hostmap[party] for party in contract.PARTY_NAMES} == {
        party: f"127.0.0.1:{port}" for party, port in contract.MESH_TF_PORTS.items()
    }
    mesh = hostmap["mesh"]
    assert list(mesh) == list(contract.PARTY_NAMES)
    domain = f"{NAMESPACE}.svc.cluster.local:{contract.MESH_PORT}"
    for player in PLAYERS:
        # A StatefulSet pod's name is `<statefulset>-0`, its DNS name `<pod>.<serviceName>...`.
        statefulset = objects[player]
        pod = f"{statefulset['metadata']['name']}-0"
        assert pod == player_pod(MODEL, player)
        assert mesh[player] == f"{pod}.{statefulset['spec']['serviceName']}.{domain}"
        assert statefulset["spec"]["serviceName"] == objects["players_service"]["metadata"]["name"]
        assert statefulset["spec"]["replicas"] == 1
    for controller in contract.CONTROLLER_NAMES:
        assert mesh[controller] == f"{objects[f'mesh_{controller}']['metadata']['name']}.{domain}"


def test_hostmap_is_one_the_runtime_accepts():
    from privatemodel.runtime.mpc import hostmap as runtime_hostmap

    data = build_all()["hostmap"]["data"][consts.HOSTMAP_FILE]
    parsed = runtime_hostmap.validate(json.loads(data))
    assert tuple(parsed.players) == PLAYERS


def test_hostmap_uses_the_cluster_domain():
    objects = build_all(defaults=OperatorDefaults(cluster_domain="example.internal"))
    mesh = json.loads(objects["hostmap"]["data"][consts.HOSTMAP_FILE])["mesh"]
    assert mesh["server2"] == f"mnist-server2-0.mnist-players.{NAMESPACE}.svc.example.internal:4450"
    assert mesh["serve"] == f"mnist-mesh-serve.{NAMESPACE}.svc.example.internal:4450"


def test_players_service_is_headless_and_publishes_starting_pods():
    spec = build_all()["players_service"]["spec"]
    assert spec["clusterIP"] == "None"
    assert spec["publishNotReadyAddresses"] is True
    assert [port["port"] for port in spec["ports"]] == [contract.MESH_PORT]


def test_controllers_mesh_addresses_are_cluster_ips_that_outlive_their_pods():
    objects = build_all()
    for controller in contract.CONTROLLER_NAMES:
        spec = objects[f"mesh_{controller}"]["spec"]
        assert spec["type"] == "ClusterIP" and "clusterIP" not in spec
        # Players reach serving during its warm-up, which its readiness waits for.
        assert spec["publishNotReadyAddresses"] is True
        assert [port["port"] for port in spec["ports"]] == [contract.MESH_PORT]


@pytest.mark.parametrize("player", PLAYERS)
def test_each_player_runs_its_party_and_only_share_holders_take_clients(player):
    statefulset = build_all()[player]
    container = only_container(statefulset)
    command = [
        "privatemodel", "player", player,
        "--config", consts.HOSTMAP_PATH, "--state-dir", consts.STATE_DIR, "--tls-dir", consts.TLS_DIR,
    ]  # fmt: skip
    probe = container["readinessProbe"]
    if player in contract.SHARE_HOLDERS:
        assert container["command"] == [*command, "--ingress-port", "8443"]
        assert named_port(container, "https") == contract.INGRESS_PORT
        assert probe["httpGet"] == {"path": "/v2/health/ready", "port": "https", "scheme": "HTTPS"}
    else:
        assert container["command"] == command
        assert [port["name"] for port in container["ports"]] == ["mesh"]
        assert probe["tcpSocket"] == {"port": "mesh"}
    assert {"name": "state", "mountPath": consts.STATE_DIR} in container["volumeMounts"]
    assert {"name": "state", "emptyDir": {}} in pod_spec(statefulset)["volumes"]
    assert "volumeClaimTemplates" not in statefulset["spec"]
    assert pod_labels(statefulset)[consts.LABEL_PLAYER] == player


def test_players_prefer_separate_nodes():
    for player in PLAYERS:
        affinity = pod_spec(build_all()[player])["affinity"]
        (term,) = affinity["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
        # All players, not only this one's own (single) pod.
        assert term["podAffinityTerm"]["labelSelector"]["matchLabels"] == {
            consts.LABEL_MODEL: MODEL,
            consts.LABEL_COMPONENT: Component.PLAYERS,
        }


def test_user_affinity_is_kept():
    node_affinity = {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": []}}
    objects = build_all({**MNIST, "players": {"affinity": {"nodeAffinity": node_affinity}}})
    affinity = pod_spec(objects["server0"])["affinity"]
    assert affinity["nodeAffinity"] == node_affinity and "podAntiAffinity" in affinity

    own = {"requiredDuringSchedulingIgnoredDuringExecution": []}
    objects = build_all({**MNIST, "players": {"affinity": {"podAntiAffinity": own}}})
    assert pod_spec(objects["server1"])["affinity"] == {"podAntiAffinity": own}


def test_scheduling_and_resources_pass_through_as_copies():
    settings = {
        "resources": {"requests": {"cpu": "500m", "memory": "1Gi"}},
        "nodeSelector": {"mpc": "yes"},
        "tolerations": [{"key": "mpc", "operator": "Exists"}],
    }
    body = {**MNIST, "players": settings, "serving": {**settings, "numRequests": 3}}
    spec = parse_spec(body)
    statefulset = build_player_stateful_set(spec, MODEL, NAMESPACE, DEFAULTS, "server2", ISSUANCE)
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


def test_pods_without_resources_get_the_operators_defaults():
    defaults = OperatorDefaults(player_resources={"requests": {"memory": "3Gi"}},
                                serving_resources={"limits": {"memory": "1Gi"}})
    objects = build_all(defaults=defaults)
    for player in PLAYERS:
        assert only_container(objects[player])["resources"] == {"requests": {"memory": "3Gi"}}
    for key in ("sharing", "serving"):
        assert only_container(objects[key])["resources"] == {"limits": {"memory": "1Gi"}}
    # Every runtime pod has a memory request and limit by default: none is evicted first.
    for key in RUNTIME_PODS:
        resources = only_container(build_all()[key])["resources"]
        assert resources["requests"]["memory"] and resources["limits"]["memory"], key


def test_images_come_from_the_spec_or_the_defaults():
    defaults = OperatorDefaults(runtime_image="registry.example/runtime:1.0", image_pull_policy="Never")
    objects = build_all(defaults=defaults)
    for key in RUNTIME_PODS:
        assert only_container(objects[key])["image"] == "registry.example/runtime:1.0"
        assert only_container(objects[key])["imagePullPolicy"] == "Never"

    body = {**MNIST, "players": {"image": "players:2"}, "serving": {"image": "serving:2"}}
    objects = build_all(body, defaults=defaults)
    assert only_container(objects["server1"])["image"] == "players:2"
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
        "--tls-dir", consts.TLS_DIR,
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
    # Serving-only and access edits keep the shares.
    serving_edit = {**MNIST, "serving": {"numRequests": 10, "resources": {"limits": {"cpu": "2"}}, "image": "x:1"},
                    "access": {"serviceType": "NodePort"}}
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


def test_serving_command_is_https_on_all_interfaces_and_passes_num_requests_only_when_set():
    common = ["privatemodel", "serve", "--config", consts.HOSTMAP_PATH, "--tls-dir", consts.TLS_DIR,
              "--host", "0.0.0.0", "--port", "8443", "--warm-up-idle", "2,4,8"]
    assert only_container(build_all()["serving"])["command"] == [*common, "--num-requests", "3", "--wait-after-complete"]
    assert only_container(build_all({**MNIST, "serving": {}})["serving"])["command"] == common


def test_serving_deployment_and_service():
    objects = build_all()
    deployment = objects["serving"]
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    template = deployment["spec"]["template"]
    assert template["metadata"]["annotations"] == {consts.ANNOTATION_SHARED_DIGEST: DIGEST}
    container = only_container(deployment)
    probe = container["readinessProbe"]["httpGet"]
    assert probe["path"] == "/healthz" and probe["scheme"] == "HTTPS"
    assert named_port(container, probe["port"]) == contract.SERVING_PORT


@pytest.mark.parametrize("defaults_type, spec_type, expected", [
    ("ClusterIP", None, "ClusterIP"),
    ("NodePort", None, "NodePort"),
    ("ClusterIP", "LoadBalancer", "LoadBalancer"),
    ("LoadBalancer", "ClusterIP", "ClusterIP"),
])
def test_clients_services_take_the_models_type_or_the_operators(defaults_type, spec_type, expected):
    body = {**MNIST, "access": {"serviceType": spec_type}} if spec_type else MNIST
    objects = build_all(body, defaults=OperatorDefaults(service_type=defaults_type))
    for key in ("serving_service", "ingress_server0", "ingress_server1"):
        assert objects[key]["spec"]["type"] == expected, key
    # Peers' addresses never leave the cluster, whatever clients get.
    for key in ("players_service", "mesh_share", "mesh_serve"):
        assert objects[key]["spec"].get("type", "ClusterIP") == "ClusterIP", key


def test_access_config_map_tells_clients_where_to_go_and_whom_to_trust():
    objects = build_all()
    data = objects["access"]["data"]
    assert data[contract.TLS_CA] == ISSUANCE.ca_certificate
    document = json.loads(data[contract.ACCESS_FILE])
    # One triple: one set of URLs to edit for a client that reaches it another way (node ports).
    assert tuple(document) == contract.ACCESS_KEYS
    assert document["ca"] == ISSUANCE.ca_certificate
    services = {"serving": objects["serving_service"], **{p: objects[f"ingress_{p}"] for p in contract.SHARE_HOLDERS}}
    for key, service in services.items():
        (port,) = service["spec"]["ports"]
        assert document[key] == f"https://{service['metadata']['name']}.{NAMESPACE}.svc.cluster.local:{port['port']}"
    assert "BEGIN PRIVATE KEY" not in json.dumps(data)


def policy_peers(rule, direction):
    return [peer["podSelector"]["matchLabels"] for peer in rule.get(direction, [])]


def test_network_policies_draw_the_mesh_and_client_boundary():
    objects = build_all()
    players, sharing, serving = (Triple(MODEL).selector(c) for c in (Component.PLAYERS, Component.SHARING,
                                                                      Component.SERVING))
    mesh = [{"port": contract.MESH_PORT, "protocol": "TCP"}]
    dns = {"ports": [{"port": 53, "protocol": "UDP"}, {"port": 53, "protocol": "TCP"}]}
    expected = {
        # (pods, mesh from, mesh to, HTTPS port open to anyone)
        "policy_players": (players, [players, sharing, serving], [players, sharing, serving], contract.INGRESS_PORT),
        "policy_sharing": (sharing, [players], [players], None),
        "policy_serving": (serving, [players], [players], contract.SERVING_PORT),
    }
    for key, (pods, mesh_from, mesh_to, https) in expected.items():
        spec = objects[key]["spec"]
        assert spec["podSelector"]["matchLabels"] == pods, key
        assert spec["policyTypes"] == ["Ingress", "Egress"], key
        mesh_in, *public = spec["ingress"]
        assert (policy_peers(mesh_in, "from"), mesh_in["ports"]) == (mesh_from, mesh), key
        assert public == ([{"ports": [{"port": https, "protocol": "TCP"}]}] if https else []), key
        mesh_out, dns_out = spec["egress"]
        assert (policy_peers(mesh_out, "to"), mesh_out["ports"]) == (mesh_to, mesh), key
        assert dns_out == dns, key
    # Every pod of the model is under one of them (a pod no policy selects would be wide open).
    selectors = [objects[key]["spec"]["podSelector"]["matchLabels"] for key in expected]
    for key in RUNTIME_PODS:
        assert sum(matches(selector, pod_labels(objects[key])) for selector in selectors) == 1, key
    # The TensorFlow ports are in no rule: nothing but the pod itself reaches them.
    rules = [rule for key in expected for rule in objects[key]["spec"]["ingress"]]
    assert not {p["port"] for rule in rules for p in rule["ports"]} & set(contract.MESH_TF_PORTS.values())


# A second triple: its own CA, its own player pods.
ISSUANCE_1 = Issuance(issuer="ef567890", ca_certificate="-----BEGIN CERTIFICATE-----\nCA 1\n-----END CERTIFICATE-----\n")
UIDS_1 = ["uid-3", "uid-4", "uid-5"]


def build_triple_1():
    return build_all(triple=1, issuance=ISSUANCE_1, uids=UIDS_1)


def test_triple_1s_children_are_named_after_it():
    names = {key: obj["metadata"]["name"] for key, obj in build_triple_1().items()}
    digest = sharing_digest(parse_spec(MNIST), UIDS_1)
    assert {key: name for key, name in names.items() if key not in ("access", "disruption_budget")} == {
        "hostmap": "mnist-t1-hostmap",
        "players_service": "mnist-t1-players",
        **{player: f"mnist-t1-{player}" for player in PLAYERS},
        **{f"ingress_{p}": f"mnist-t1-ingress-{p}" for p in contract.SHARE_HOLDERS},
        **{f"mesh_{c}": f"mnist-t1-mesh-{c}" for c in contract.CONTROLLER_NAMES},
        **{f"policy_{c}": f"mnist-t1-{c}" for c in ("players", "sharing", "serving")},
        "sharing": f"mnist-t1-sharing-{digest}",
        "serving": "mnist-t1-serving",
        "serving_service": "mnist-t1-serving",
        **{f"tls_{party}": f"mnist-t1-tls-{party}-ef567890" for party in contract.PARTY_NAMES},
    }
    # The model-wide ones are triple 0's, as before scale-out.
    assert (names["access"], names["disruption_budget"]) == ("mnist-access", "mnist-players")


def test_triple_0s_workloads_are_the_ones_from_before_scale_out():
    """An operator upgrade must not roll triple 0's pods (its players would lose their shares)."""
    objects = build_all()
    for player in PLAYERS:
        assert objects[player]["spec"]["selector"]["matchLabels"] == {
            consts.LABEL_MODEL: MODEL, consts.LABEL_COMPONENT: Component.PLAYERS, consts.LABEL_PLAYER: player}
        assert consts.LABEL_TRIPLE not in pod_labels(objects[player])
        assert pod_labels(objects[player])[consts.LABEL_INSTANCE] == MODEL
    assert objects["serving"]["spec"]["selector"]["matchLabels"] == selector_labels(MODEL, Component.SERVING)


def test_services_and_policies_select_their_own_triples_pods_only():
    triples = {0: build_all(), 1: build_triple_1()}
    pods = [(triple, key, pod_labels(objects[key])) for triple, objects in triples.items() for key in RUNTIME_PODS]
    for triple, objects in triples.items():
        for key, obj in objects.items():
            if obj["kind"] == "Service":
                selector = obj["spec"]["selector"]
            elif obj["kind"] == "NetworkPolicy":
                selector = obj["spec"]["podSelector"]["matchLabels"]
                peers = [peer["podSelector"]["matchLabels"] for rule in obj["spec"]["ingress"] + obj["spec"]["egress"]
                         for peer in rule.get("from", rule.get("to", []))]
                for peer in peers:
                    assert {t for t, _, labels in pods if matches(peer, labels)} == {triple}, (triple, key)
            else:
                continue
            assert {t for t, _, labels in pods if matches(selector, labels)} == {triple}, (triple, key)


def test_each_workload_of_triple_1_selects_only_its_own_pods():
    triples = {0: build_all(), 1: build_triple_1()}
    for key in (*PLAYERS, "serving"):
        selector = triples[1][key]["spec"]["selector"]["matchLabels"]
        assert matches(selector, pod_labels(triples[1][key]))
        assert not matches(selector, pod_labels(triples[0][key])), key
        assert pod_labels(triples[1][key])[consts.LABEL_TRIPLE] == "1"


def test_triple_1s_pods_read_its_hostmap_and_its_own_partys_secret():
    objects = build_triple_1()
    for key in RUNTIME_PODS:
        (volume,) = [v for v in pod_spec(objects[key])["volumes"] if v["name"] == "config"]
        hostmap, secret = volume["projected"]["sources"]
        assert hostmap["configMap"]["name"] == "mnist-t1-hostmap"
        assert secret["secret"]["name"] == f"mnist-t1-tls-{PARTY_OF[key]}-{ISSUANCE_1.issuer}", key
    mesh = json.loads(objects["hostmap"]["data"][consts.HOSTMAP_FILE])[contract.MESH_KEY]
    assert mesh["server1"].startswith(f"mnist-t1-server1-0.mnist-t1-players.{NAMESPACE}.svc")
    assert mesh["serve"].startswith(f"mnist-t1-mesh-serve.{NAMESPACE}.svc")


def test_one_disruption_budget_and_one_spread_for_every_triples_players():
    triples = {0: build_all(), 1: build_triple_1()}
    budget = triples[0]["disruption_budget"]["spec"]["selector"]["matchLabels"]
    for objects in triples.values():
        for player in PLAYERS:
            assert matches(budget, pod_labels(objects[player]))
            (spread,) = pod_spec(objects[player])["affinity"]["podAntiAffinity"][
                "preferredDuringSchedulingIgnoredDuringExecution"]
            assert all(matches(spread["podAffinityTerm"]["labelSelector"]["matchLabels"], pod_labels(objects[p]))
                       for objects in triples.values() for p in PLAYERS)


def test_access_lists_every_triple_each_under_its_own_ca():
    spec = parse_spec(MNIST)
    defaults = OperatorDefaults(service_monitor=True)
    access_map = build_access_config_map(spec, MODEL, NAMESPACE, defaults, [ISSUANCE, ISSUANCE_1])
    document = json.loads(access_map["data"][contract.ACCESS_FILE])
    first, second = document[contract.ACCESS_TRIPLES]
    assert first == {key: document[key] for key in contract.ACCESS_KEYS}
    assert second == {
        "serving": f"https://mnist-t1-serving.{NAMESPACE}.svc.cluster.local:{contract.SERVING_PORT}",
        **{p: f"https://mnist-t1-ingress-{p}.{NAMESPACE}.svc.cluster.local:{contract.INGRESS_PORT}"
           for p in contract.SHARE_HOLDERS},
        "ca": ISSUANCE_1.ca_certificate,
    }
    monitor = build_serving_service_monitor(spec, MODEL, NAMESPACE, defaults, 1)
    ca = monitor["spec"]["endpoints"][0]["tlsConfig"]["ca"]["configMap"]
    assert access_map["data"][ca["key"]] == ISSUANCE_1.ca_certificate
    assert matches(monitor["spec"]["selector"]["matchLabels"], build_triple_1()["serving_service"]["metadata"]["labels"])
    assert not matches(monitor["spec"]["selector"]["matchLabels"], build_all()["serving_service"]["metadata"]["labels"])
