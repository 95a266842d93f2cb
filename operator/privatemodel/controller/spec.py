"""A PrivateModel's spec, parsed once into frozen dataclasses.

The CRD schema already checks types, enums, minimums and "exactly one source"; parsing checks them
again (builders and tests get bodies that never went through the API server) and adds what the
schema cannot say: the batch size shared by both shapes, file names a volume can hold, and how
long a PrivateModel's name may be. Every SpecError message starts with the field path.
"""
import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from privatemodel import contract
from privatemodel.controller import consts
from privatemodel.controller.naming import MAX_MODEL_NAME_LENGTH, MAX_SCALED_MODEL_NAME_LENGTH

# Service names are DNS-1035 labels, and the players Service carries the model's name.
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Secret and ConfigMap names.
_DNS_1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# Secret and ConfigMap keys; the key is also the file name in the sharing pod.
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")

_POD_FIELDS = ("image", "resources", "nodeSelector", "tolerations", "affinity")


class SpecError(ValueError):
    """The PrivateModel cannot be built as written; fixing it needs a user's edit."""

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class SourceKind:
    SECRET = "secretKeyRef"
    CONFIG_MAP = "configMapKeyRef"
    PVC = "pvc"


SOURCE_KINDS = (SourceKind.SECRET, SourceKind.CONFIG_MAP, SourceKind.PVC)


@dataclass(frozen=True)
class FileSource:
    """One file only the sharing Job reads: a Secret or ConfigMap key, or a path in a PVC."""

    kind: str  # one of SOURCE_KINDS
    name: str  # the Secret's, ConfigMap's or claim's name
    path: str  # the key, or the path inside the claim; the file's path below its mount


@dataclass(frozen=True)
class PodSettings:
    """Image and scheduling for one kind of runtime pod; None/empty means the operator's default."""

    image: str | None = None
    resources: dict = field(default_factory=dict)
    node_selector: dict = field(default_factory=dict)
    tolerations: tuple = ()
    affinity: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ServingSettings(PodSettings):
    num_requests: int | None = None  # None: serve until the PrivateModel is deleted
    replicas: int = 1  # independent player triples, each with its own sharing and serving


@dataclass(frozen=True)
class AccessSettings:
    """How clients reach the model: the type of serving's and the ingresses' Services."""

    service_type: str | None = None  # None: the operator's default


@dataclass(frozen=True)
class PrivateModelSpec:
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    model: FileSource
    architecture: FileSource | None = None  # set for a weights-only .h5
    protocol: str = consts.PROTOCOL_SECURENN
    # The sharing Job is a driver like serving (it connects to the players and runs their
    # graphs), so it runs with serving's image, resources and scheduling.
    serving: ServingSettings = field(default_factory=ServingSettings)
    players: PodSettings = field(default_factory=PodSettings)
    access: AccessSettings = field(default_factory=AccessSettings)


def parse_spec(spec: Mapping) -> PrivateModelSpec:
    path = "spec"
    spec = _object(spec, path, known=("protocol", "inputShape", "outputShape", "model", "serving", "players", "access"))
    protocol = spec.get("protocol", consts.PROTOCOL_SECURENN)
    if protocol not in consts.PROTOCOLS:
        raise SpecError(f"{path}.protocol", f"must be one of {', '.join(consts.PROTOCOLS)}, got {protocol!r}")
    input_shape = _shape(_required(spec, "inputShape", path), f"{path}.inputShape")
    output_shape = _shape(_required(spec, "outputShape", path), f"{path}.outputShape")
    if input_shape[0] > contract.DEFAULT_MAX_BATCH:
        raise SpecError(f"{path}.inputShape[0]", f"the batch size must be at most {contract.DEFAULT_MAX_BATCH}"
                                                 f" (the largest batch serving accepts), got {input_shape[0]}")
    if output_shape[0] != input_shape[0]:
        raise SpecError(
            f"{path}.outputShape[0]",
            f"must equal spec.inputShape[0] (the batch size, {input_shape[0]}), got {output_shape[0]}",
        )
    model = _object(_required(spec, "model", path), f"{path}.model", known=(*SOURCE_KINDS, "architecture"))
    architecture = model.get("architecture")
    return PrivateModelSpec(
        protocol=protocol,
        input_shape=input_shape,
        output_shape=output_shape,
        model=_file_source(model, f"{path}.model"),
        architecture=None if architecture is None else _file_source(architecture, f"{path}.model.architecture"),
        serving=_serving(spec.get("serving", {}), f"{path}.serving"),
        players=PodSettings(**_pod_settings(spec.get("players", {}), f"{path}.players")),
        access=_access(spec.get("access", {}), f"{path}.access"),
    )


def check_model_name(name: str, replicas: int = 1) -> None:
    """The PrivateModel's own name becomes part of Service, StatefulSet and Job names (with
    `-t<N>` inserted for triples 1 and up)."""
    if not isinstance(name, str) or not _DNS_1035_LABEL.match(name):
        raise SpecError(
            "metadata.name",
            "must be lower-case letters, digits and '-', start with a letter and end with a letter or digit,"
            f" got {name!r}",
        )
    if len(name) > MAX_MODEL_NAME_LENGTH:
        raise SpecError("metadata.name", f"must be at most {MAX_MODEL_NAME_LENGTH} characters, got {len(name)}")
    if replicas > 1 and len(name) > MAX_SCALED_MODEL_NAME_LENGTH:
        raise SpecError("metadata.name", f"must be at most {MAX_SCALED_MODEL_NAME_LENGTH} characters with"
                                         f" spec.serving.replicas > 1 (triples' children add -t<N>), got {len(name)}")


def _file_source(source: Mapping, path: str) -> FileSource:
    chosen = [kind for kind in SOURCE_KINDS if source.get(kind) is not None]
    if len(chosen) != 1:
        got = " and ".join(chosen) if chosen else "none"
        raise SpecError(path, f"must set exactly one of {', '.join(SOURCE_KINDS)}, got {got}")
    kind = chosen[0]
    path = f"{path}.{kind}"
    if kind == SourceKind.PVC:
        ref = _object(source[kind], path, known=("claimName", "path"))
        claim = _string(_required(ref, "claimName", path), f"{path}.claimName", _DNS_1123_SUBDOMAIN)
        return FileSource(kind, claim, _relative_path(_required(ref, "path", path), f"{path}.path"))
    ref = _object(source[kind], path, known=("name", "key"))
    name = _string(_required(ref, "name", path), f"{path}.name", _DNS_1123_SUBDOMAIN)
    key = _string(_required(ref, "key", path), f"{path}.key", _CONFIG_KEY)
    if key in (".", ".."):
        raise SpecError(f"{path}.key", f"must name a file, got {key!r}")
    return FileSource(kind, name, key)


def _relative_path(value, path: str) -> str:
    text = _string(value, path)
    if text.startswith("/") or posixpath.normpath(text) != text or text.split("/")[0] == "..":
        raise SpecError(path, f"must be a normalized path relative to the volume's root, without '..', got {text!r}")
    return text


def _access(access, path: str) -> AccessSettings:
    access = _object(access, path, known=("serviceType",))
    service_type = access.get("serviceType")
    if service_type is not None and service_type not in consts.SERVICE_TYPES:
        raise SpecError(f"{path}.serviceType", f"must be one of {', '.join(consts.SERVICE_TYPES)}, got {service_type!r}")
    return AccessSettings(service_type=service_type)


def _serving(serving, path: str) -> ServingSettings:
    serving = _object(serving, path, known=("numRequests", "replicas", *_POD_FIELDS))
    replicas = _positive_int(serving.get("replicas", 1), f"{path}.replicas")
    if replicas > consts.MAX_REPLICAS:
        raise SpecError(f"{path}.replicas", f"must be at most {consts.MAX_REPLICAS}, got {replicas}")
    num_requests = serving.get("numRequests")
    if num_requests is not None:
        num_requests = _positive_int(num_requests, f"{path}.numRequests")
        if replicas > 1:
            raise SpecError(f"{path}.numRequests", f"cannot be combined with {path}.replicas > 1 (got {replicas}):"
                                                   " each triple serves on its own, so a count of answers cannot be"
                                                   " split exactly across them; remove one of the two")
    pod = {key: value for key, value in serving.items() if key not in ("numRequests", "replicas")}
    return ServingSettings(num_requests=num_requests, replicas=replicas, **_pod_settings(pod, path))


def _pod_settings(settings, path: str) -> dict:
    """Keyword arguments for PodSettings, as plain copies (the body may be a read-only view)."""
    settings = _object(settings, path, known=_POD_FIELDS)
    image = settings.get("image")
    resources = _object(settings.get("resources", {}), f"{path}.resources", known=("limits", "requests"))
    for kind, quantities in resources.items():
        for resource, quantity in _object(quantities, f"{path}.resources.{kind}").items():
            if isinstance(quantity, bool) or not isinstance(quantity, (str, int, float)):
                raise SpecError(
                    f"{path}.resources.{kind}.{resource}", f"must be a quantity such as 500m or 1Gi, got {quantity!r}"
                )
    node_selector = _object(settings.get("nodeSelector", {}), f"{path}.nodeSelector")
    for key, value in node_selector.items():
        _string(value, f"{path}.nodeSelector.{key}")
    tolerations = settings.get("tolerations", [])
    if not isinstance(tolerations, list):
        raise SpecError(f"{path}.tolerations", f"must be a list, got {type(tolerations).__name__}")
    return {
        "image": None if image is None else _string(image, f"{path}.image"),
        "resources": _plain(resources),
        "node_selector": _plain(node_selector),
        "tolerations": tuple(_plain(_object(t, f"{path}.tolerations[{i}]")) for i, t in enumerate(tolerations)),
        "affinity": _plain(_object(settings.get("affinity", {}), f"{path}.affinity")),
    }


def _shape(value, path: str) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise SpecError(path, f"must be a non-empty list of positive integers, got {value!r}")
    return tuple(_positive_int(dimension, f"{path}[{index}]") for index, dimension in enumerate(value))


def _positive_int(value, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(path, f"must be a positive integer, got {value!r}")
    return value


def _string(value, path: str, pattern: re.Pattern | None = None) -> str:
    if not isinstance(value, str) or not value:
        raise SpecError(path, f"must be a non-empty string, got {value!r}")
    if pattern and not pattern.match(value):
        raise SpecError(path, f"must match {pattern.pattern}, got {value!r}")
    return value


def _required(mapping: Mapping, key: str, path: str):
    if mapping.get(key) is None:
        raise SpecError(f"{path}.{key}", "is required")
    return mapping[key]


def _object(value, path: str, known: tuple[str, ...] | None = None) -> Mapping:
    if not isinstance(value, Mapping):
        raise SpecError(path, f"must be an object, got {type(value).__name__}")
    if known is not None:
        for key in value:
            if key not in known:
                raise SpecError(f"{path}.{key}", f"unknown field; expected one of {', '.join(known)}")
    return value


def _plain(value):
    """Deep copy into dicts and lists, so no parsed value aliases the body it came from."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value
