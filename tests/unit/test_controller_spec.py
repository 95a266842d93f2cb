"""Parsing a PrivateModel's spec: typed values, defaults, and errors that name the field path."""
import copy
import dataclasses
from pathlib import Path

import pytest
import yaml

from privatemodel.controller import consts
from privatemodel.controller.defaults import OperatorDefaults
from privatemodel import contract
from privatemodel.controller.consts import Component
from privatemodel.controller.naming import (
    MAX_MODEL_NAME_LENGTH,
    MAX_SCALED_MODEL_NAME_LENGTH,
    Triple,
    child_name,
    player_pod,
    player_workload,
)
from privatemodel.controller.spec import FileSource, SourceKind, SpecError, check_model_name, parse_spec

REPO = Path(__file__).resolve().parents[2]

MNIST = {
    "inputShape": [1, 28, 28, 1],
    "outputShape": [1, 10],
    "model": {"secretKeyRef": {"name": "mnist-model", "key": "model.h5"}},
}


def with_change(path: str, value):
    """MNIST with one dotted path set (or removed, for value None)."""
    spec = copy.deepcopy(MNIST)
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    if value is None:
        node.pop(last, None)
    else:
        node[last] = value
    return spec


def test_minimal_spec_gets_the_defaults():
    spec = parse_spec(MNIST)
    assert spec.protocol == consts.PROTOCOL_SECURENN
    assert spec.input_shape == (1, 28, 28, 1)
    assert spec.output_shape == (1, 10)
    assert spec.model == FileSource(SourceKind.SECRET, "mnist-model", "model.h5")
    assert spec.architecture is None
    assert spec.serving.num_requests is None
    assert spec.serving.image is None and spec.players.image is None
    assert spec.players.resources == {} and spec.players.tolerations == ()
    assert spec.access.service_type is None  # the operator's default


@pytest.mark.parametrize("service_type", consts.SERVICE_TYPES)
def test_access_service_types(service_type):
    assert parse_spec(with_change("access.serviceType", service_type)).access.service_type == service_type


def test_an_unknown_service_type_names_the_field():
    with pytest.raises(SpecError, match=r"^spec\.access\.serviceType: must be one of ClusterIP, NodePort"):
        parse_spec(with_change("access.serviceType", "ExternalName"))


def test_the_example_parses():
    body = yaml.safe_load((REPO / "examples/mnist-privatemodel.yaml").read_text())
    assert body["apiVersion"] == consts.API_VERSION and body["kind"] == consts.KIND
    check_model_name(body["metadata"]["name"])
    spec = parse_spec(body["spec"])
    assert spec.serving.num_requests == 3
    assert spec.input_shape == (1, 28, 28, 1) and spec.output_shape == (1, 10)
    assert spec.model == FileSource(SourceKind.SECRET, "mnist-model", "model.h5")


def test_every_source_kind_and_an_architecture():
    spec = parse_spec(
        {
            **MNIST,
            "model": {
                "pvc": {"claimName": "models", "path": "mnist/weights.h5"},
                "architecture": {"configMapKeyRef": {"name": "mnist-arch", "key": "model.json"}},
            },
        }
    )
    assert spec.model == FileSource(SourceKind.PVC, "models", "mnist/weights.h5")
    assert spec.architecture == FileSource(SourceKind.CONFIG_MAP, "mnist-arch", "model.json")


def test_pod_settings_are_copied_not_shared_with_the_body():
    body = with_change("players", {"resources": {"limits": {"memory": "1Gi"}}, "tolerations": [{"key": "mpc"}]})
    spec = parse_spec(body)
    body["players"]["resources"]["limits"]["memory"] = "2Gi"
    body["players"]["tolerations"][0]["key"] = "changed"
    assert spec.players.resources == {"limits": {"memory": "1Gi"}}
    assert spec.players.tolerations == ({"key": "mpc"},)


def test_the_spec_is_frozen():
    spec = parse_spec(MNIST)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.protocol = "other"


@pytest.mark.parametrize(
    "path, value, message",
    [
        ("inputShape", [1, 28, -1, 1], "spec.inputShape[2]: must be a positive integer, got -1"),
        ("inputShape", [1, True], "spec.inputShape[1]: must be a positive integer, got True"),
        ("inputShape", [], "spec.inputShape: must be a non-empty list of positive integers, got []"),
        ("inputShape", None, "spec.inputShape: is required"),
        ("outputShape", [2, 10], "spec.outputShape[0]: must equal spec.inputShape[0] (the batch size, 1), got 2"),
        ("protocol", "ABY3", "spec.protocol: must be one of SecureNN, got 'ABY3'"),
        ("servng", {}, "spec.servng: unknown field"),
        ("model", None, "spec.model: is required"),
        ("model", {}, "spec.model: must set exactly one of secretKeyRef, configMapKeyRef, pvc, got none"),
        (
            "model.pvc",
            {"claimName": "models", "path": "m.h5"},
            "spec.model: must set exactly one of secretKeyRef, configMapKeyRef, pvc, got secretKeyRef and pvc",
        ),
        ("model.secretKeyRef", {"name": "mnist-model"}, "spec.model.secretKeyRef.key: is required"),
        ("model.secretKeyRef", {"name": "mnist-model", "key": "a/b.h5"}, "spec.model.secretKeyRef.key: must match"),
        ("model.secretKeyRef", {"name": "mnist-model", "key": ".."}, "spec.model.secretKeyRef.key: must name a file"),
        ("model.secretKeyRef", {"name": "Mnist_Model", "key": "m.h5"}, "spec.model.secretKeyRef.name: must match"),
        (
            "model.architecture",
            {"secretKeyRef": {"name": "a", "key": "a.json"}, "configMapKeyRef": {"name": "a", "key": "a.json"}},
            "spec.model.architecture: must set exactly one of",
        ),
        ("serving.numRequests", 0, "spec.serving.numRequests: must be a positive integer, got 0"),
        ("serving.image", "", "spec.serving.image: must be a non-empty string"),
        ("players.resources", {"limits": {"cpu": True}}, "spec.players.resources.limits.cpu: must be a quantity"),
        ("players.resources", {"limit": {}}, "spec.players.resources.limit: unknown field"),
        ("players.tolerations", {"key": "x"}, "spec.players.tolerations: must be a list, got dict"),
        ("players.tolerations", ["x"], "spec.players.tolerations[0]: must be an object, got str"),
        ("players.nodeSelector", {"zone": 1}, "spec.players.nodeSelector.zone: must be a non-empty string"),
    ],
)
def test_errors_name_the_field_path(path, value, message):
    # model.* changes keep MNIST's secretKeyRef, so "model.pvc" makes two sources.
    body = with_change(path, value)
    with pytest.raises(SpecError) as raised:
        parse_spec(body)
    assert str(raised.value).startswith(message)


@pytest.mark.parametrize("path", ["/abs/m.h5", "../m.h5", "a/../m.h5", "./m.h5", "dir/", ".."])
def test_pvc_paths_stay_inside_the_volume(path):
    body = {**MNIST, "model": {"pvc": {"claimName": "models", "path": path}}}
    with pytest.raises(SpecError, match=r"^spec\.model\.pvc\.path: must be a normalized path"):
        parse_spec(body)


@pytest.mark.parametrize("name", ["mnist", "m", "a1-b2", "x" * MAX_MODEL_NAME_LENGTH])
def test_model_names_that_fit(name):
    check_model_name(name)


@pytest.mark.parametrize("name", ["Mnist", "1mnist", "mnist-", "mn.ist", "", "x" * (MAX_MODEL_NAME_LENGTH + 1)])
def test_model_names_that_do_not(name):
    with pytest.raises(SpecError, match=r"^metadata\.name: "):
        check_model_name(name)


def test_the_longest_model_name_leaves_room_for_derived_names():
    name = "x" * MAX_MODEL_NAME_LENGTH
    for player in contract.PLAYER_NAMES:
        assert len(f"{player_workload(name, player)}-{'h' * 10}") <= 63  # controller-revision-hash label
        assert len(player_pod(name, player)) <= 63  # the pod's hostname, a DNS label
    assert len(child_name(name, consts.Component.SHARING, "d" * consts.SHARING_DIGEST_LENGTH)) <= 63
    assert MAX_MODEL_NAME_LENGTH == 44


def test_defaults_from_env():
    defaults = OperatorDefaults.from_env(
        {
            consts.ENV_RUNTIME_IMAGE: "registry.example/runtime:1.0",
            consts.ENV_IMAGE_PULL_POLICY: "Never",
            consts.ENV_CLUSTER_DOMAIN: "example.internal",
            consts.ENV_SERVICE_TYPE: "NodePort",
        }
    )
    assert defaults == OperatorDefaults("registry.example/runtime:1.0", "Never", "example.internal", "NodePort")
    assert OperatorDefaults.from_env({}) == OperatorDefaults()
    assert OperatorDefaults().runtime_image == consts.DEFAULT_RUNTIME_IMAGE


def test_defaults_reject_a_bad_pull_policy():
    with pytest.raises(ValueError, match=consts.ENV_IMAGE_PULL_POLICY):
        OperatorDefaults.from_env({consts.ENV_IMAGE_PULL_POLICY: "Sometimes"})
    with pytest.raises(ValueError, match=consts.ENV_SERVICE_TYPE):
        OperatorDefaults.from_env({consts.ENV_SERVICE_TYPE: "ExternalName"})
    with pytest.raises(ValueError, match=consts.ENV_PLAYER_RESOURCES):
        OperatorDefaults.from_env({consts.ENV_PLAYER_RESOURCES: "{memory: 1Gi"})
    with pytest.raises(ValueError, match=consts.ENV_SERVING_RESOURCES):
        OperatorDefaults.from_env({consts.ENV_SERVING_RESOURCES: '{"memory": "1Gi"}'})


def test_only_allowed_images_may_be_named():
    defaults = OperatorDefaults.from_env({consts.ENV_RUNTIME_IMAGE: "registry.example/runtime:1.0",
                                          consts.ENV_ALLOWED_IMAGES: "registry.example/runtime:1.1, registry.example/team-a/*"})
    for image in ("registry.example/runtime:1.0", "registry.example/runtime:1.1", "registry.example/team-a/gpu:7"):
        defaults.check_images(parse_spec({**MNIST, "players": {"image": image}, "serving": {"image": image}}))
    for field, image in (("players", "attacker/steal-secrets:latest"), ("serving", "registry.example/runtime:1.1-evil"),
                         ("serving", "registry.example/team-b/x:1")):
        with pytest.raises(SpecError) as error:
            defaults.check_images(parse_spec({**MNIST, field: {"image": image}}))
        assert str(error.value).startswith(f"spec.{field}.image: image {image!r} is not allowed by this operator")
        assert "runtime.allowedImages" in str(error.value)
    # By default only the runtime image itself.
    with pytest.raises(SpecError, match="spec.serving.image"):
        OperatorDefaults().check_images(parse_spec({**MNIST, "serving": {"image": "busybox"}}))


def test_replicas_default_to_one_triple_and_take_up_to_the_maximum():
    assert parse_spec(MNIST).serving.replicas == 1
    assert parse_spec(with_change("serving.replicas", consts.MAX_REPLICAS)).serving.replicas == consts.MAX_REPLICAS


@pytest.mark.parametrize("replicas, problem", [
    (0, "must be a positive integer"), (consts.MAX_REPLICAS + 1, f"must be at most {consts.MAX_REPLICAS}"),
    ("2", "must be a positive integer"), (True, "must be a positive integer"),
])
def test_bad_replicas_name_the_field(replicas, problem):
    with pytest.raises(SpecError, match=rf"^spec\.serving\.replicas: {problem}"):
        parse_spec(with_change("serving.replicas", replicas))


def test_num_requests_cannot_be_split_across_triples():
    spec = with_change("serving", {"replicas": 2, "numRequests": 10})
    with pytest.raises(SpecError, match=r"^spec\.serving\.numRequests: cannot be combined with spec\.serving\.replicas > 1"):
        parse_spec(spec)
    assert parse_spec(with_change("serving", {"replicas": 1, "numRequests": 10})).serving.num_requests == 10


def test_a_scaled_out_model_needs_room_for_its_triples_names():
    longest = "m" * MAX_SCALED_MODEL_NAME_LENGTH
    check_model_name(longest, consts.MAX_REPLICAS)
    check_model_name(longest + "mmm", 1)  # a single triple keeps the full length
    with pytest.raises(SpecError, match=rf"^metadata\.name: must be at most {MAX_SCALED_MODEL_NAME_LENGTH} characters with"):
        check_model_name(longest + "m", 2)
    # Every name Kubernetes derives from the last triple's children stays within 63.
    last = Triple(longest, consts.MAX_REPLICAS - 1)
    assert len(f"{last.player_workload('server2')}-{'h' * 10}") <= 63  # controller-revision-hash
    assert len(last.name(Component.SHARING, "d" * consts.SHARING_DIGEST_LENGTH)) <= 63  # job-name
    assert len(last.selector(Component.PLAYERS)[consts.LABEL_INSTANCE]) <= 63
